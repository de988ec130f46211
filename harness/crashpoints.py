"""Aimed kill points for crash tests: `CHAOSDRILL_CRASH_AT=<name>[,<name>…]` makes a harness SIGKILL
itself when it reaches one of the named record/spawn boundaries, so a test kills exactly between
"recorded" and "spawned" (or "spawned" and "pid recorded") instead of hoping a random kill lands there.

    env.after_record       LocalEnvironment recorded, its temp dir not made yet
    postgres.after_spawn   pg_ctl started PostgreSQL; up() has not re-recorded
    redis.after_spawn      a ChildProcess spawned (Redis, the app, Toxiproxy: <name>.after_spawn),
    app.after_spawn        its pid not known to the object nor recorded yet
    toxiproxy.after_spawn
    load.after_record      a Locust run recorded (no pid), Locust not spawned yet
    load.after_spawn       Locust spawned, its pid not recorded yet

Unset (always, outside tests) it costs one dict lookup. Children never inherit it (`child_env`).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CHAOSDRILL_CRASH_AT"
POINTS = ("env.after_record", "postgres.after_spawn", "redis.after_spawn", "toxiproxy.after_spawn", "app.after_spawn",
          "load.after_record", "load.after_spawn")


def crash_point(name: str) -> None:
    armed = os.environ.get(CRASH_ENV)
    if armed and name in armed.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
