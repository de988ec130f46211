"""harness.faults exports exactly its public names (httpx's test_exported_members pattern)."""

import harness.faults


def test_all_matches_public_members():
    public = {n for n in dir(harness.faults) if not n.startswith("_") and n[0].isupper() or n.startswith("recover")}
    assert set(harness.faults.__all__) == public
    assert harness.faults.__all__ == sorted(harness.faults.__all__)


def test_toxic_classes_are_named_after_their_wire_type():
    from harness.toxiproxy.models import TOXIC_TYPES

    toxics = {cls.type: name for name in harness.faults.__all__
              if isinstance(cls := getattr(harness.faults, name), type) and hasattr(cls, "type")
              and name.endswith("Toxic")}
    assert set(toxics) == set(TOXIC_TYPES) - {"noop"}
    for wire, name in toxics.items():
        assert name == "".join(p.title() for p in wire.split("_")) + "Toxic"
