"""Scenario-wide fixtures only; the chaosdrill pytest plugin provides chaos_env and chaos_experiment."""
