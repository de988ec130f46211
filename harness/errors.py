"""The harness's exception tree, each class with a stable process exit code.

    HarnessError (4)                 the tool itself failed
    ├── ConfigError (2)              bad chaosdrill.toml, CLI argument or marker
    │   └── FaultRefused (2)         a fault aims outside the environment, off loopback, or lacks rights
    ├── EnvironmentStartError (4)    a service would not start / binary missing / port in use
    ├── TargetMissed (3)             a run completed but missed an objective
    ├── RevertFailed (5)             a fault could not be undone (cleanup needed)
    └── FaultError (4)               applying a fault failed (nothing of it is left applied)
        ├── ContainerError (4)       the Docker engine refused or is unreachable
        └── FirewallError (4)        nft/iptables refused a rule

CI tells "objective missed" (3) from "tool broke" (4) by exit code alone, as pgBackRest's
numbered errors let scripts react without parsing text.
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
