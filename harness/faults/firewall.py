"""A network partition of one loopback port in the kernel: packets dropped or reset (docs/recipes.md §7).

    client ──SYN──► lo ──► [input hook: table inet chaosdrill_<id>] ──✗ drop / RST ──► server:port

nftables first: our own table `inet chaosdrill_<id>`, added in one atomic `nft -f`, and deleted
whole, so cleanup never touches anyone else's rules. iptables is the fallback, with every rule
tagged `--comment chaosdrill-<id>` and deleted by its exact spec. Both need root or CAP_NET_ADMIN;
without them (a laptop user) the fault is refused up front: use Toxiproxy faults instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, ClassVar

from harness.errors import FaultRefused, FirewallError
from harness.faults.base import AllowList, Fault
from harness.faults.journal import undo_action

LOOPBACK = "127.0.0.1"
CAP_NET_ADMIN = 12
MODES = ("drop", "reject")
BACKENDS = ("auto", "nft", "iptables")
TABLE_PREFIX = "chaosdrill_"
COMMENT_PREFIX = "chaosdrill-"


def has_net_admin() -> bool:
    """True when this process may change the firewall (effective CAP_NET_ADMIN; root normally has it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def find_tool(name: str) -> str | None:
    """`nft`/`iptables` on PATH or in the sbin directories a non-root PATH often lacks."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)


def _first_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return lines[0] if lines else f"exit {proc.returncode}"


class PartitionPort(Fault):
    """Drop (or reset) TCP traffic to a loopback port, for `loss` percent of packets (100: a full partition)."""

    modes: ClassVar[tuple[str, ...]] = MODES

    def __init__(self, port: int, *, mode: str = "drop", loss: int = 100, backend: str = "auto",
                 **kw: Any) -> None:
        super().__init__(**kw)
        if mode not in MODES:
            raise ValueError(f"mode must be one of: {', '.join(MODES)}; got: {mode!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of: {', '.join(BACKENDS)}; got: {backend!r}")
        if not 0 < int(loss) <= 100:
            raise ValueError(f"loss must be a percentage in 1..100; got: {loss!r}")
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be in 1..65535; got: {port!r}")
        self.port = int(port)
        self.mode = mode
        self.loss = int(loss)
        self.backend = backend
        self.table = f"{TABLE_PREFIX}{self.id}"
        self.comment = f"{COMMENT_PREFIX}{self.id}"

    def target_label(self) -> str:
        return f"{LOOPBACK}:{self.port}, {self.mode}" + ("" if self.loss == 100 else f" {self.loss}%")

    def _prepare(self) -> None:
        if self.backend == "auto":
            self.backend = "nft" if find_tool("nft") else "iptables"

    def _check(self, allow: AllowList | None) -> None:
        if not find_tool(self.backend):
            raise FaultRefused(f"{self.label}: `{self.backend}` not found; install nftables or iptables, "
                               "or use a Toxiproxy fault instead")
        if not has_net_admin():
            raise FaultRefused(f"{self.label}: changing the firewall needs root or CAP_NET_ADMIN; "
                               "use ProxyDown or TimeoutToxic through Toxiproxy instead")
        if allow is not None:
            allow.check_endpoint(LOOPBACK, self.port, self.label)

    def journal_record(self) -> dict[str, Any]:
        if self.backend == "nft":
            return {"type": "nft_table", "family": "inet", "table": self.table}
        return {"type": "iptables_rule", "spec": self.iptables_spec()}

    # -- nftables ------------------------------------------------------------------------
    def nft_script(self) -> str:
        match = f'iif "lo" tcp dport {self.port}'
        if self.loss < 100:
            match += f" numgen random mod 100 < {self.loss}"
        verdict = "drop" if self.mode == "drop" else "reject with tcp reset"
        return (f"table inet {self.table} {{\n"
                f"  chain input {{ type filter hook input priority -10; policy accept;\n"
                f"    {match} {verdict}\n  }}\n}}\n")

    # -- iptables ------------------------------------------------------------------------
    def iptables_spec(self) -> list[str]:
        spec = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(self.port)]
        if self.loss < 100:
            spec += ["-m", "statistic", "--mode", "random", "--probability", f"{self.loss / 100:.2f}"]
        spec += ["-m", "comment", "--comment", self.comment]
        spec += ["-j", "DROP"] if self.mode == "drop" else ["-j", "REJECT", "--reject-with", "tcp-reset"]
        return spec

    def _apply(self) -> None:
        if self.backend == "nft":
            proc = _run([find_tool("nft") or "nft", "-f", "-"], stdin=self.nft_script())
        else:
            proc = _run([find_tool("iptables") or "iptables", "-I", *self.iptables_spec()])
        if proc.returncode != 0:
            raise FirewallError(f"{self.label}: {self.backend} refused the rule: {_first_line(proc)}")

    def _revert(self) -> None:
        if self.backend == "nft":
            delete_nft_table("inet", self.table)
        else:
            delete_iptables_rule(self.iptables_spec())


def delete_nft_table(family: str, table: str) -> bool:
    """Delete one of our tables; False when it was not there."""
    if not table.startswith(TABLE_PREFIX) or family != "inet":
        raise FirewallError(f"refusing to delete nft table {family} {table}: not a chaosdrill table")
    nft = find_tool("nft") or "nft"
    if _run([nft, "list", "table", family, table]).returncode != 0:
        return False
    proc = _run([nft, "delete", "table", family, table])
    if proc.returncode != 0:
        raise FirewallError(f"nft delete table {family} {table} failed: {_first_line(proc)}")
    return True


def delete_iptables_rule(spec: list[str]) -> int:
    """Delete every copy of one of our tagged loopback rules; returns how many were deleted."""
    tagged = any(a.startswith(COMMENT_PREFIX) for a in spec) and spec[:3] == ["INPUT", "-i", "lo"]
    if not tagged:
        raise FirewallError(f"refusing to delete iptables rule {' '.join(spec)}: not a chaosdrill loopback rule")
    iptables = find_tool("iptables") or "iptables"
    deleted = 0
    while _run([iptables, "-C", *spec]).returncode == 0:
        proc = _run([iptables, "-D", *spec])
        if proc.returncode != 0:
            raise FirewallError(f"iptables -D {' '.join(spec)} failed: {_first_line(proc)}")
        deleted += 1
    return deleted


def chaosdrill_nft_tables() -> list[str]:
    """Names of the chaosdrill tables present now (for tests and diagnostics)."""
    proc = _run([find_tool("nft") or "nft", "list", "tables"])
    return [line.split()[-1] for line in proc.stdout.splitlines() if f" {TABLE_PREFIX}" in line]


@undo_action("nft_table")
def undo_nft_table(record: dict[str, Any]) -> str:
    found = delete_nft_table(record.get("family", "inet"), record["table"])
    return f"{'deleted' if found else 'already gone:'} nft table {record.get('family', 'inet')} {record['table']}"


@undo_action("iptables_rule")
def undo_iptables_rule(record: dict[str, Any]) -> str:
    deleted = delete_iptables_rule(list(record["spec"]))
    return f"deleted {deleted} iptables rule(s) {' '.join(record['spec'])}"
