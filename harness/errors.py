"""The harness's exception tree, each class with a stable process exit code.

    HarnessError (4)                 the tool itself failed
    ├── ConfigError (2)              bad chaosdrill.toml, CLI argument or marker
    │   └── FaultRefused (2)         a fault aims outside the environment, off loopback, or lacks rights
    ├── EnvironmentStartError (4)    a service would not start / binary missing / port in use
    ├── TargetMissed (3)             a run completed but missed an objective
    ├── RevertFailed (5)             a fault could not be undone (cleanup needed)
    ├── RunAborted (6)               a stop condition (guard) tripped: the fault was reverted early
    ├── Regressed (7)                objectives met, but worse than the baseline beyond tolerance
    └── FaultError (4)               applying a fault failed (nothing of it is left applied)
        ├── ContainerError (4)       the Docker engine refused or is unreachable
        └── FirewallError (4)        nft/iptables refused a rule

CI tells "objective missed" (3) from "tool broke" (4) by exit code alone, as pgBackRest's
numbered errors let scripts react without parsing text. A run interrupted by SIGINT or SIGTERM
reverts its fault, records an aborted run and exits 128 + the signal (130, 143). The one table is
EXIT_CODES below (README, "Exit codes"); when several runs end differently the most severe code
wins, in the order of SEVERITY.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: the message is one line, fit for the CLI without a traceback."""

    exit_code = 4


class ConfigError(HarnessError):
    """A configuration file, CLI argument or marker is invalid."""

    exit_code = 2


class EnvironmentStartError(HarnessError):
    """A service of the environment could not be started or reached."""

    exit_code = 4


class TargetMissed(HarnessError):
    """The run finished, but at least one objective was missed."""

    exit_code = 3


class RevertFailed(HarnessError):
    """A fault could not be undone; `chaosdrill cleanup` must be run."""

    exit_code = 5


class FaultRefused(ConfigError):
    """A fault was refused before it took effect: target outside the environment, non-loopback, no rights."""

    exit_code = 2


class FaultError(HarnessError):
    """Applying a fault failed; whatever part of it was applied has been reverted."""

    exit_code = 4


class ContainerError(FaultError):
    """The Docker engine is unreachable or refused a container operation (mapped from docker.errors)."""

    exit_code = 4


class FirewallError(FaultError):
    """nft or iptables refused to add or delete a rule."""

    exit_code = 4


class RunAborted(HarnessError):
    """A stop condition tripped while the fault was held: reverted early, recovery measured, run aborted."""

    exit_code = 6


class Regressed(HarnessError):
    """Objectives met, but significantly worse than the baseline runs beyond the configured tolerance."""

    exit_code = 7


EXIT_PASSED, EXIT_BAD_INPUT, EXIT_TARGET_MISSED, EXIT_TOOL_ERROR, EXIT_REVERT_FAILED = 0, 2, 3, 4, 5
EXIT_ABORTED, EXIT_REGRESSED, EXIT_SIGINT, EXIT_SIGTERM = 6, 7, 130, 143
# The stable table (README "Exit codes"): code → meaning.
EXIT_CODES = {
    EXIT_PASSED: "passed: every objective measured and met (and no regression)",
    EXIT_BAD_INPUT: "bad input: config, argument, marker or baseline refused before anything started",
    EXIT_TARGET_MISSED: "target missed: a run finished but missed an objective (or measured none)",
    EXIT_TOOL_ERROR: "tool error: chaosdrill or the environment failed",
    EXIT_REVERT_FAILED: "revert failed: a fault could not be undone; run `chaosdrill cleanup`",
    EXIT_ABORTED: "aborted: a stop condition tripped; the fault was reverted early",
    EXIT_REGRESSED: "regressed: significantly worse than the baseline beyond tolerance",
    EXIT_SIGINT: "interrupted by SIGINT: fault reverted, run recorded as aborted",
    EXIT_SIGTERM: "interrupted by SIGTERM: fault reverted, run recorded as aborted",
}
# Most severe first: the exit code of a command whose runs ended differently.
SEVERITY = (EXIT_REVERT_FAILED, EXIT_SIGTERM, EXIT_SIGINT, EXIT_TOOL_ERROR, EXIT_BAD_INPUT, EXIT_ABORTED,
            EXIT_TARGET_MISSED, EXIT_REGRESSED, EXIT_PASSED)


def most_severe(codes) -> int:
    """The exit code of several outcomes: the first of SEVERITY present (0 when there are none)."""
    present = set(codes)
    return next((c for c in SEVERITY if c in present), EXIT_PASSED)
