"""The reference service: a small orders API on PostgreSQL and Redis that drills break for real."""
