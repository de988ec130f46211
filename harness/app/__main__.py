"""`python -m harness.app --port P --pg-dsn DSN --redis-url URL`: run the reference service."""

from __future__ import annotations

import argparse

from harness.app.server import AppSettings, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pg-dsn", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--events", default=None, help="JSONL file for breaker/recovery events")
    args = parser.parse_args()
    run(AppSettings(host=args.host, port=args.port, pg_dsn=args.pg_dsn, redis_url=args.redis_url,
                    events_path=args.events))


if __name__ == "__main__":
    main()
