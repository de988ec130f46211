"""Backup engines: one module per kind of data (PostgreSQL physical/logical, Redis, files, configuration)."""
