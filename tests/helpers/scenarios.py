"""Run the bundled scenario files as a user runs them: `pytest scenarios/` (the plugin), in a work dir
holding the chaosdrill.toml given; outcomes per test from the session's JUnit XML."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# A short db_outage run (about 10 s) for tests that drive the real CLI.
QUICK = """
[run]
probe_interval = "100ms"
[environment.local.app]
recovery_wait = "100ms"
[scenarios.db_outage]
baseline = "1s"
hold = "1.5s"
after = "1s"
[load]
users = 4
throughput_per_user = 5
"""


def run_scenarios(work: Path, config: str, *args: str, timeout: float = 540) -> subprocess.CompletedProcess:
    (work / "chaosdrill.toml").write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(SCENARIOS), "-p", "no:cacheprovider", "-q", "-rs", "--strict-markers",
         "--junitxml", str(work / "junit.xml"), *args],
        cwd=work, capture_output=True, text=True, timeout=timeout)


def outcomes(work: Path) -> dict[str, str]:
    """Test name → passed / failure / error / skipped, from the session's JUnit XML."""
    found = {}
    for case in ET.parse(work / "junit.xml").getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[case.get("name")] = kinds[0] if kinds else "passed"
    return found
