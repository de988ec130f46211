"""WAL naming, continuity and recycled-segment detection (pure functions, no server)."""

from __future__ import annotations

import struct

from resilience.backup.engines.pgbackrest import live_segments, segment_name
from resilience.backup.verify import segno, wal_gaps

SEG = 16 << 20


def test_segment_names_roll_over_logs():
    assert segment_name(1, 0x3000000, SEG) == "000000010000000000000003"
    assert segment_name(2, 0x1_FF000000, SEG) == "0000000200000001000000FF"
    assert segno("0000000100000001000000FF") == (1, 0x1FF)


def test_wal_gaps_per_timeline_and_from_start():
    segs = ["000000010000000000000003", "000000010000000000000004", "000000010000000000000006",
            "0000000100000000000000FF", "000000010000000100000000", "000000020000000100000001"]
    gaps = wal_gaps(segs)
    assert gaps == ["WAL timeline 1: WAL segment 000000010000000000000005 is missing",
                    "WAL timeline 1: WAL segments 000000010000000000000007 … 0000000100000000000000FE (248) "
                    "are missing"]
    assert wal_gaps(segs[3:]) == []
    assert wal_gaps(segs[3:], start="0000000100000000000000FE") == [
        "WAL timeline 1: first needed segment 0000000100000000000000FE is missing"]


def _segment(path, tli: int, pageaddr: int) -> None:
    head = struct.pack("<HHIQI4xQII", 0xD110, 2, tli, pageaddr, 0, 7, SEG, 8192)
    path.write_bytes(head + b"\0" * 100)


def test_recycled_segments_are_not_live(tmp_path):
    _segment(tmp_path / "000000010000000000000005", 1, 0x5000000)
    _segment(tmp_path / "000000010000000000000006", 1, 0x2000000)  # recycled: header still says segment 2
    (tmp_path / "000000010000000000000007").write_bytes(b"")     # preallocated, empty
    (tmp_path / "00000002.history").write_text("1\t0/5000000\tno recovery target\n")
    assert [p.name for p in live_segments(tmp_path)] == ["000000010000000000000005"]
