"""The bridge's bounded spool: every record waits here until the broker has acknowledged it.

Devices do not stop when the broker does, so the bridge keeps what it cannot deliver and replays it,
strictly in order, when the broker is back; new records always queue behind the spooled ones. The
spool is one ordered queue in two tiers:

* memory (the oldest records, up to ``memory_records``; in normal operation this is just the handful of
  records in flight);
* disk: when memory is full, newer records go to segment files under ``directory`` (at most
  ``disk_bytes`` in all). Segments are read back into memory, oldest first, as memory drains.

Every record has an index (0, 1, 2, ... over the spool's life); a segment file is named by the index of
its first record and the ``head`` file holds the index of the oldest record not yet acknowledged, so a
bridge that restarts (or a new ``Spool`` on the same folder) picks up exactly where the last one left
off. ``close()`` writes the memory tier to disk too. Segment format: per record, ``<u32 key length>
<u32 value length> key value``; a torn last record (a crash mid-write) is ignored when reading.

When the disk budget is full the *oldest* disk segment is dropped, so that the most recent physiology
reaches the nurses when the broker comes back; ``append`` returns the dropped records so the caller can
count them and report which beds and streams lost data. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_RECORD = struct.Struct("<II")
_SUFFIX = ".seg"


@dataclass(frozen=True)
class Record:
    """One spooled Kafka record: its position in the spool, key and value."""

    index: int
    key: bytes
    value: bytes

    @property
    def size(self) -> int:
        return _RECORD.size + len(self.key) + len(self.value)


@dataclass
class _Segment:
    path: Path
    first: int
    count: int
    size: int
    handle: BinaryIO | None = None  # open for appending (only the newest segment)

    @property
    def last(self) -> int:
        return self.first + self.count - 1


class Spool:
    """Ordered, bounded, restartable queue of records (thread-safe)."""

    def __init__(self, directory: str | Path, memory_records: int, disk_bytes: int, segment_bytes: int | None = None):
        if memory_records < 1 or disk_bytes < 1:
            raise ValueError(f"spool bounds must be >= 1, got memory_records={memory_records}, disk_bytes={disk_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.memory_records = memory_records
        self.disk_bytes = disk_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 * 1024 * 1024, disk_bytes // 8))
        self.segment_records = max(1, memory_records // 2)  # a segment read back fits beside a draining memory
        self._lock = threading.Lock()
        self._memory: deque[Record] = deque()
        self._backing: deque[_Segment] = deque()  # segment files whose records are now in memory
        self._segments: deque[_Segment] = deque()  # disk tier, oldest first; the last may be open
        self._size = 0  # records queued (memory + disk), maintained by every operation
        self._head, self._next = self._recover()

    # --- public API --------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return self._size

    @property
    def disk_used(self) -> int:
        """Bytes of segment files on disk (including those already read back into memory)."""
        with self._lock:
            return self._disk_used()

    @property
    def disk_fill(self) -> float:
        """Fraction of the disk budget in use (0.0 while everything fits in memory)."""
        with self._lock:
            return self._disk_used() / self.disk_bytes

    def append(self, key: bytes, value: bytes) -> list[Record]:
        """Queue a record behind everything spooled; returns the records dropped to stay within bounds."""
        with self._lock:
            record = Record(self._next, key, value)
            self._next += 1
            if not self._segments and len(self._memory) < self.memory_records:
                self._memory.append(record)
                self._size += 1
                return []
            dropped = self._make_room(record.size)
            if record.size > self.disk_bytes - self._disk_used():
                return [*dropped, record]  # larger than the whole disk budget: cannot be kept
            self._write(record)
            self._size += 1
            return dropped

    def peek_after(self, index: int | None, limit: int) -> list[Record]:
        """Up to ``limit`` records after ``index`` (None: from the oldest), oldest first, without removing them.

        Records come from memory; disk segments are read back while memory has room for them.
        """
        with self._lock:
            start = self._head if index is None else index + 1
            while (
                self._segments
                and (not self._memory or self._memory[-1].index < start + limit - 1)
                and len(self._memory) + self._segments[0].count <= self.memory_records
            ):
                self._read_back()  # read ahead only as far as the memory bound: the rest stays droppable
            return [r for r in self._memory if r.index >= start][:limit]

    def pop_through(self, index: int) -> int:
        """Forget every record up to ``index`` (acknowledged by the broker); returns how many."""
        with self._lock:
            popped = 0
            while self._memory and self._memory[0].index <= index:
                self._memory.popleft()
                popped += 1
            self._size -= popped
            self._head = max(self._head, index + 1)
            if self._backing:
                while self._backing and self._backing[0].last < self._head:
                    self._backing.popleft().path.unlink(missing_ok=True)
                self._write_head()
            return popped

    def close(self) -> None:
        """Persist the memory tier and close files; a new ``Spool`` on the directory resumes from here."""
        with self._lock:
            self._seal()
            backed = {i for seg in self._backing for i in range(seg.first, seg.first + seg.count)}
            run: list[Record] = []
            for record in [*self._memory, None]:
                if record is not None and record.index not in backed:
                    run.append(record)
                    continue
                if run:
                    self._write_segment(run)
                    run = []
            self._write_head()
            self._memory.clear()
            self._backing.clear()

    # --- internals (called with the lock held) ------------------------------------------------------

    def _disk_used(self) -> int:
        return sum(s.size for s in self._segments) + sum(s.size for s in self._backing)

    def _make_room(self, size: int) -> list[Record]:
        dropped: list[Record] = []
        while self._disk_used() + size > self.disk_bytes and self._segments:
            if self._segments[0].handle is not None:
                self._seal()
            segment = self._segments.popleft()
            lost = [r for r in self._read_segment(segment) if r.index >= self._head]
            segment.path.unlink(missing_ok=True)
            self._size -= len(lost)
            dropped.extend(lost)
        if dropped:
            log.warning("spool full (%d bytes): dropped the %d oldest spooled records", self.disk_bytes, len(dropped))
        return dropped

    def _write(self, record: Record) -> None:
        segment = self._segments[-1] if self._segments and self._segments[-1].handle is not None else None
        if segment is None:
            path = self.directory / f"{record.index:020d}{_SUFFIX}"
            segment = _Segment(path, record.index, 0, 0, open(path, "ab"))  # noqa: SIM115 - closed by _seal
            self._segments.append(segment)
        assert segment.handle is not None
        segment.handle.write(_RECORD.pack(len(record.key), len(record.value)) + record.key + record.value)
        segment.handle.flush()
        segment.count += 1
        segment.size += record.size
        if segment.size >= self.segment_bytes or segment.count >= self.segment_records:
            self._seal()

    def _seal(self) -> None:
        """Close the open (newest) segment, if any."""
        if self._segments and self._segments[-1].handle is not None:
            handle = self._segments[-1].handle
            self._segments[-1].handle = None
            handle.close()

    def _read_back(self) -> None:
        """Move the oldest disk segment into memory (its file stays until its records are acknowledged)."""
        if self._segments[0].handle is not None:
            self._seal()
        segment = self._segments.popleft()
        self._memory.extend(r for r in self._read_segment(segment) if r.index >= self._head)
        self._backing.append(segment)

    def _read_segment(self, segment: _Segment) -> list[Record]:
        records: list[Record] = []
        data = segment.path.read_bytes()
        offset = 0
        while offset + _RECORD.size <= len(data):
            key_len, value_len = _RECORD.unpack_from(data, offset)
            end = offset + _RECORD.size + key_len + value_len
            if end > len(data):
                break
            key = data[offset + _RECORD.size : offset + _RECORD.size + key_len]
            records.append(Record(segment.first + len(records), key, data[end - value_len : end]))
            offset = end
        if offset != len(data):
            log.warning("%s: ignoring a torn record at byte %d (written during a crash)", segment.path, offset)
        return records

    def _write_segment(self, records: list[Record]) -> None:
        path = self.directory / f"{records[0].index:020d}{_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(_RECORD.pack(len(r.key), len(r.value)) + r.key + r.value for r in records))
        os.replace(tmp, path)

    def _write_head(self) -> None:
        tmp = self.directory / "head.tmp"
        tmp.write_text(str(self._head))
        os.replace(tmp, self.directory / "head")

    def _recover(self) -> tuple[int, int]:
        """Find segments left by an earlier spool on this directory; returns (head, next index)."""
        head_file = self.directory / "head"
        head = int(head_file.read_text() or 0) if head_file.is_file() else 0
        next_index = head
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            segment = _Segment(path, int(path.stem), 0, path.stat().st_size)
            segment.count = len(self._read_segment(segment))
            if segment.count == 0 or segment.last < head:
                path.unlink()
                continue
            self._segments.append(segment)
            self._size += segment.last + 1 - max(head, segment.first)
            next_index = max(next_index, segment.last + 1)
        if self._size:
            log.info("spool %s: %d records left from before, replaying them first", self.directory, self._size)
        return head, next_index
