"""One device stream of a bed as the epocher buffers it: samples per epoch on the stream's own grid, the
unbroken run of chunks received so far, and the ack tokens of messages that carried several chunks.

Kept apart from ``psg.epoching.epocher`` because it is the part that must be exact about sample indices
(rounding on the grid, whole-Hz fast path) while the epocher decides *when* an epoch is complete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from psg.montage import EPOCH_S


class ChunkShare:
    """The token the epocher holds for each chunk of a message that carried several (a ``ChunkBundle``):
    one object for all of them; the message's token is released when the last of its chunks is."""

    __slots__ = ("token", "left")

    def __init__(self, token: object, shares: int) -> None:
        self.token, self.left = token, shares


def whole_tokens(released: list[object]) -> list[object]:
    """``released`` with bundle shares replaced by their message's token once its last chunk is released."""
    out = []
    for token in released:
        if isinstance(token, ChunkShare):
            token.left -= 1
            if token.left == 0:
                out.append(token.token)
        else:
            out.append(token)
    return out


@dataclass
class StreamBuffer:
    """One device stream of a bed: samples per epoch on the stream's grid (NaN until received)."""

    fs: float
    labels: tuple[str, ...]
    units: tuple[str, ...]
    blocks: dict[int, np.ndarray] = field(default_factory=dict)
    #: Per block: every sample written so far lies before this index (chunks arriving in order write
    #: past it, onto NaN only: no need to look for samples already there).
    written: dict[int, int] = field(default_factory=dict)
    reach: int = 0  # sample index just past the furthest sample received
    contiguous: int = 0  # ... just past the last sample of the unbroken run of chunks (by seq)
    next_seq: int | None = None  # the seq that would extend the unbroken run
    pending: dict[int, int] = field(default_factory=dict)  # seq -> end index of chunks past a missing seq
    lost: bool = False
    #: Samples per epoch when the rate is a whole number of Hz: the epoch grid is then exactly
    #: ``epoch * samples_per_epoch`` and ``bounds`` / ``epoch_of`` skip the float rounding (they run
    #: several times per chunk, ~100 chunks per epoch and bed).
    samples_per_epoch: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if float(self.fs).is_integer():
            self.samples_per_epoch = int(EPOCH_S) * int(self.fs)

    def received(self, seq: int, end: int) -> None:
        """Advance ``reach`` and the unbroken run with chunk ``seq`` ending at sample index ``end``."""
        self.reach = max(self.reach, end)
        if self.next_seq is None:
            self.next_seq = seq
        if seq < self.next_seq:
            self.contiguous = max(self.contiguous, end)
            return
        self.pending[seq] = end
        self._drain()

    def give_up_before(self, index: int) -> None:
        """Stop waiting for missing chunks before sample ``index`` (their epoch was emitted without them)."""
        while self.pending and self.contiguous < index:
            self.next_seq = min(self.pending)
            self._drain()

    def _drain(self) -> None:
        while self.next_seq in self.pending:
            self.contiguous = max(self.contiguous, self.pending.pop(self.next_seq))
            self.next_seq += 1

    def bounds(self, epoch: int) -> tuple[int, int]:
        """Sample indices [start, end) of ``epoch`` (starts rounded per epoch, so odd rates do not drift)."""
        spe = self.samples_per_epoch
        if spe is not None:
            return epoch * spe, (epoch + 1) * spe
        return int(round(epoch * EPOCH_S * self.fs)), int(round((epoch + 1) * EPOCH_S * self.fs))

    def epoch_of(self, index: int) -> int:
        """The epoch containing sample ``index``."""
        if self.samples_per_epoch is not None:
            return index // self.samples_per_epoch
        epoch = int(math.floor(index / (EPOCH_S * self.fs)))
        while self.bounds(epoch + 1)[0] <= index:
            epoch += 1
        while self.bounds(epoch)[0] > index:
            epoch -= 1
        return epoch

    def block(self, epoch: int) -> np.ndarray:
        if epoch not in self.blocks:
            start, end = self.bounds(epoch)
            self.blocks[epoch] = np.full((len(self.labels), end - start), np.nan, dtype=np.float32)
        return self.blocks[epoch]

    def write(self, epoch: int, offset: int, samples: np.ndarray) -> None:
        """Place ``samples`` (channels, n) at ``offset`` in ``epoch``'s block; a sample already there wins."""
        target = self.block(epoch)[:, offset : offset + samples.shape[1]]
        if offset >= self.written.get(epoch, 0):
            target[...] = samples  # nothing written here yet
        else:
            np.copyto(target, samples, where=np.isnan(target))
        self.written[epoch] = max(self.written.get(epoch, 0), offset + samples.shape[1])

    def forget_before(self, epoch: int) -> None:
        """Drop the blocks of epochs before ``epoch``."""
        for old in [e for e in self.blocks if e < epoch]:
            del self.blocks[old]
            self.written.pop(old, None)
