"""`python -m harness.app --port P --pg-dsn DSN --redis-url URL`: run the reference service."""

from __future__ import annotations

import argparse

from harness.app.server import AppSettings, run
from harness.app.sinks import read_spec


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pg-dsn", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--events", default=None, help="JSONL file for breaker/recovery events")
    parser.add_argument("--breaker-failure-threshold", type=int, default=5)
    parser.add_argument("--breaker-wait-in-open", type=float, default=60.0, help="seconds")
    parser.add_argument("--recovery-attempts", type=int, default=3)
    parser.add_argument("--recovery-wait", type=float, default=1.0, help="seconds × attempt between tries")
    parser.add_argument("--incidents", default=None, help="JSON file: incident sinks ([incidents] of chaosdrill.toml)")
    args = parser.parse_args()
    run(AppSettings(host=args.host, port=args.port, pg_dsn=args.pg_dsn, redis_url=args.redis_url,
                    events_path=args.events, breaker_failure_threshold=args.breaker_failure_threshold,
                    breaker_wait_in_open=args.breaker_wait_in_open, recovery_attempts=args.recovery_attempts,
                    recovery_wait=args.recovery_wait, incidents=read_spec(args.incidents)))


if __name__ == "__main__":
    main()
