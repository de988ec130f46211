"""Kernel partitions of a loopback port with nftables (and the tagged iptables fallback)."""

from __future__ import annotations

import socket

import pytest

from harness.errors import FaultRefused
from harness.faults import AllowList, Journal, firewall, recover_leftovers
from harness.faults.firewall import PartitionPort, chaosdrill_nft_tables, find_tool, has_net_admin
from harness.faults.journal import Entry
from tests.integration.faults.helpers import redis_ping, wait_ping

needs_rights = pytest.mark.skipif(not has_net_admin(), reason="needs root or CAP_NET_ADMIN")


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSDRILL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def connect_error(port: int) -> type[BaseException] | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return None
    except OSError as exc:
        return type(exc)


@needs_rights
def test_nft_drop_partitions_and_heals(redis_server):
    assert redis_ping(redis_server.port)
    with PartitionPort(redis_server.port) as fault:
        assert fault.table in chaosdrill_nft_tables()
        assert connect_error(redis_server.port) in (TimeoutError, socket.timeout)
        assert Journal().read(fault.id).record == {"type": "nft_table", "family": "inet", "table": fault.table}
    assert fault.table not in chaosdrill_nft_tables()
    assert wait_ping(redis_server.port)


@needs_rights
def test_nft_reject_is_refused_at_once(redis_server):
    with PartitionPort(redis_server.port, mode="reject"):
        assert connect_error(redis_server.port) is ConnectionRefusedError
    assert redis_ping(redis_server.port)


@needs_rights
@pytest.mark.skipif(not find_tool("iptables"), reason="iptables not installed")
def test_iptables_fallback_tags_and_deletes_its_rule(redis_server):
    with PartitionPort(redis_server.port, mode="reject", backend="iptables") as fault:
        assert connect_error(redis_server.port) is ConnectionRefusedError
        assert fault.comment in firewall._run(["iptables", "-S", "INPUT"]).stdout
    assert fault.comment not in firewall._run(["iptables", "-S", "INPUT"]).stdout
    assert redis_ping(redis_server.port)


@needs_rights
def test_cleanup_deletes_exactly_our_table(redis_server, state):
    fault = PartitionPort(redis_server.port, mode="reject")
    fault._prepare()
    Journal().write(Entry(fault.id, fault.label, fault.journal_record(), owner_pid=2**22 + 7))
    fault._apply()
    assert connect_error(redis_server.port) is ConnectionRefusedError
    [line] = recover_leftovers(state)
    assert line == f"undone {fault.label}: deleted nft table inet {fault.table}"
    assert redis_ping(redis_server.port)
    assert recover_leftovers(state) == []


def test_refused_without_rights(monkeypatch, state):
    monkeypatch.setattr(firewall, "has_net_admin", lambda: False)
    with pytest.raises(FaultRefused) as info, PartitionPort(6379):
        pass
    assert str(info.value) == ("PartitionPort(127.0.0.1:6379, drop): changing the firewall needs root or "
                               "CAP_NET_ADMIN; use ProxyDown or TimeoutToxic through Toxiproxy instead")
    assert Journal().ids() == []


def test_refused_without_the_tool(monkeypatch):
    monkeypatch.setattr(firewall, "find_tool", lambda name: None)
    with pytest.raises(FaultRefused, match=r"`iptables` not found; install nftables or iptables"), \
            PartitionPort(6379):
        pass


def test_refused_outside_the_environment():
    with pytest.raises(FaultRefused, match="127.0.0.1:6379 is not in the environment"), \
            PartitionPort(6379, allow=AllowList.of(endpoints=[("127.0.0.1", 5432)])):
        pass


def test_bad_arguments_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"mode must be one of: drop, reject; got: 'blackhole'"):
        PartitionPort(1, mode="blackhole")
    with pytest.raises(ValueError, match=r"loss must be a percentage in 1..100; got: 0"):
        PartitionPort(1, loss=0)


def test_foreign_tables_are_never_deleted():
    with pytest.raises(Exception, match="not a chaosdrill table"):
        firewall.undo_nft_table({"type": "nft_table", "family": "inet", "table": "filter"})
    with pytest.raises(Exception, match="not a chaosdrill loopback rule"):
        firewall.undo_iptables_rule({"type": "iptables_rule", "spec": ["INPUT", "-j", "DROP"]})
