"""The Redis key manifest comparison: what a restored Redis must hold, given the backup's manifest."""

from __future__ import annotations

from resilience.backup.engines.redis_rdb import diff_key_manifests, key_digest, parse_key_rows

NOW = 1_800_000_000_000


def entry(sha1="a" * 40, type_="string", expire_at_ms=-1):
    return {"type": type_, "sha1": sha1, "expire_at_ms": expire_at_ms}


def test_identical_manifests_have_no_differences():
    m = {"order:1": entry(), "order:2": entry("b" * 40, expire_at_ms=NOW + 300_000)}
    assert diff_key_manifests(m, dict(m), NOW) == {"missing": [], "changed": [], "unexpected": []}


def test_missing_changed_and_unexpected_keys_are_named():
    expected = {"order:1": entry(), "order:2": entry("b" * 40), "order:3": entry("c" * 40)}
    restored = {"order:1": entry(), "order:2": entry("f" * 40), "order:9": entry()}
    assert diff_key_manifests(expected, restored, NOW) == {
        "missing": ["order:3"], "changed": ["order:2"], "unexpected": ["order:9"]}


def test_a_type_change_with_the_same_value_hash_is_a_change():
    assert diff_key_manifests({"k": entry()}, {"k": entry(type_="list")}, NOW)["changed"] == ["k"]


def test_keys_expired_since_the_backup_are_not_expected_but_live_ones_are():
    expected = {"gone": entry(expire_at_ms=NOW - 60_000), "live": entry(expire_at_ms=NOW + 60_000)}
    assert diff_key_manifests(expected, {}, NOW)["missing"] == ["live"]


def test_keys_about_to_expire_are_ignored_either_way():
    expected = {"edge": entry(expire_at_ms=NOW + 500)}
    assert diff_key_manifests(expected, {}, NOW) == {"missing": [], "changed": [], "unexpected": []}
    assert diff_key_manifests(expected, {"edge": entry("0" * 40)}, NOW)["changed"] == []


def test_digest_is_order_independent_and_sees_any_value_change():
    a = {"x": entry("1" * 40), "y": entry("2" * 40)}
    b = {"y": entry("2" * 40), "x": entry("1" * 40)}
    assert key_digest(a) == key_digest(b)
    assert key_digest(a) != key_digest({"x": entry("1" * 40), "y": entry("3" * 40)})
    assert key_digest(a) != key_digest({"x": entry("1" * 40)})


def test_script_rows_are_decoded():
    rows = [[b"order:1", b"string", b"ab" * 20, 1234], [b"h", b"hash", b"cd" * 20, -1]]
    assert parse_key_rows(rows) == {"order:1": entry("ab" * 20, expire_at_ms=1234),
                                    "h": entry("cd" * 20, "hash", -1)}
