"""Start the real CLI, wait for a progress line on stderr, then send it a signal: how the SIGINT/SIGTERM
tests stop a run, a drill or a restore test in the middle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Interrupted:
    returncode: int
    stdout: str
    stderr: str  # everything the command wrote on stderr, the lines before the signal included
    pid: int  # of the signalled process (what its leftovers are named by)


def signal_cli_when(args: list[str], when: str, *, cwd: Path | None = None, sig: int = signal.SIGTERM,
                    delay: float = 0.0, timeout: float = 180) -> Interrupted:
    """`chaosdrill ARGS`; once a stderr line contains `when` (and `delay` s later) send `sig`; wait."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli_main", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ | {"COLUMNS": "200"})
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if when in line:
            break
    time.sleep(delay)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=timeout)
    return Interrupted(proc.returncode, stdout, "".join(seen) + stderr, proc.pid)
