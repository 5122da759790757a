"""The bridge spool: strict order, bounded memory and disk, counted overflow, restart from disk."""

from __future__ import annotations

from pathlib import Path

from device_bridges.spool import Spool


def _fill(spool: Spool, n: int, size: int = 100, start: int = 0) -> list:
    dropped = []
    for i in range(start, start + n):
        dropped += spool.append(b"bed-01", i.to_bytes(4, "little") + bytes(size))
    return dropped


def _drain(spool: Spool, window: int = 7) -> list[int]:
    """Read everything back the way the bridge's sender does: peek a window, acknowledge it, repeat."""
    out: list[int] = []
    while True:
        batch = spool.peek_after(None, window)
        if not batch:
            return out
        out += [int.from_bytes(r.value[:4], "little") for r in batch]
        spool.pop_through(batch[-1].index)


def test_memory_only_keeps_order_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_records=50, disk_bytes=1_000_000)
    assert _fill(spool, 30) == []
    assert len(spool) == 30 and spool.disk_used == 0 and not list(tmp_path.glob("*.seg"))
    assert _drain(spool) == list(range(30))
    assert len(spool) == 0


def test_spills_to_disk_in_order_and_new_records_queue_behind(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_records=10, disk_bytes=1_000_000)
    _fill(spool, 25)
    assert spool.disk_used > 0 and len(spool) == 25
    # the sender sees the oldest first; records appended while it drains still come last
    first = spool.peek_after(None, 5)
    spool.pop_through(first[-1].index)
    _fill(spool, 10, start=25)
    rest = _drain(spool)
    assert [int.from_bytes(r.value[:4], "little") for r in first] + rest == list(range(35))
    assert spool.disk_used == 0 and not list(tmp_path.glob("*.seg"))


def test_peek_after_reads_ahead_within_the_memory_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_records=4, disk_bytes=1_000_000)
    _fill(spool, 12)  # 0..3 in memory, 4..11 on disk in segments of 2
    window = spool.peek_after(None, 3)
    more = spool.peek_after(window[-1].index, 6)  # in flight: 0..2; read-ahead stops at the memory bound
    assert [r.index for r in window + more] == [0, 1, 2, 3]
    assert len(spool) == 12
    spool.pop_through(1)  # room for one segment from disk
    assert [r.index for r in spool.peek_after(3, 100)] == [4, 5]
    spool.pop_through(4)
    assert [r.index for r in spool.peek_after(None, 100)] == [5, 6, 7]


def test_disk_bound_drops_oldest_segment_and_reports_it(tmp_path: Path) -> None:
    record = 4 + 1000 + 8 + len(b"bed-01")
    spool = Spool(tmp_path, memory_records=5, disk_bytes=20 * record, segment_bytes=4 * record)
    dropped = _fill(spool, 100, size=1000)
    assert spool.disk_used <= 20 * record
    kept = _drain(spool)
    lost = sorted(int.from_bytes(r.value[:4], "little") for r in dropped)
    # every record is either delivered or reported dropped, never both, never neither
    assert sorted(kept + lost) == list(range(100))
    assert kept[:5] == [0, 1, 2, 3, 4]  # memory (oldest, in flight) is never dropped
    assert kept[-1] == 99 and kept == sorted(kept)  # newest data kept, order preserved
    assert len(lost) >= 100 - 5 - 20


def test_record_larger_than_disk_budget_is_reported(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_records=1, disk_bytes=500)
    assert spool.append(b"k", b"small") == []
    dropped = spool.append(b"k", bytes(1000))
    assert [len(r.value) for r in dropped] == [1000]
    assert len(spool) == 1


def test_survives_restart_from_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_records=8, disk_bytes=1_000_000)
    _fill(spool, 40)
    window = spool.peek_after(None, 12)  # reads a segment back into memory
    spool.pop_through(window[5].index)  # 0..5 acknowledged
    spool.close()
    again = Spool(tmp_path, memory_records=8, disk_bytes=1_000_000)
    assert len(again) == 34
    _fill(again, 5, start=40)
    assert _drain(again) == list(range(6, 45))
    again.close()
    assert len(Spool(tmp_path, memory_records=8, disk_bytes=1_000_000)) == 0


def test_crash_without_close_keeps_disk_records_and_ignores_torn_write(tmp_path: Path) -> None:
    spool = Spool(tmp_path, memory_records=3, disk_bytes=1_000_000)
    _fill(spool, 10)  # 0..2 in memory (lost with the process), 3..9 on disk
    newest = sorted(tmp_path.glob("*.seg"))[-1]
    with open(newest, "ab") as handle:
        handle.write(b"\x05\x00\x00\x00\xff")  # half a record header: the crash happened mid-write
    del spool
    assert _drain(Spool(tmp_path, memory_records=3, disk_bytes=1_000_000)) == list(range(3, 10))
