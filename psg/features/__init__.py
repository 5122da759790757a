"""Per-epoch features of a recording: one dict per whole 30-s epoch, aligned to the recording start.

The merged dict is the single source of every number the captions, the rule stager and the live
display show: brain and somatic features from ``psg.features.neuro``, heart rate and HRV from
``psg.features.cardiac``, breathing and oximetry from ``psg.features.respiratory``. A feature is None
where its channel is missing, flat or unusable in that epoch; nothing here raises for a missing channel.

The cardiac and respiratory extractors are imported when ``epoch_features`` runs, not with the
package: they pull in SciPy's filters and peak search (a slow import), and the modules that only need the neuro band
definitions (captions, the rule stager) should not pay for it.

A discontinuous recording (EDF+D, ``Recording.gaps``) holds zeros in its gaps. An epoch with any part in
a gap has every feature None (nothing was measured there, and zeros read as a flat EEG, an asystole and
an apnea), and the other epochs are measured on the whole epochs of their recorded segment alone
(``_by_segment``), so no filter, R-peak search or breathing baseline runs across a gap's zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from psg.errors import PSGError
from psg.features.neuro import Feature, neuro_epoch_features
from psg.recording import Recording

__all__ = ["Feature", "epoch_features"]


def epoch_features(
    recording: Recording, epochs: Sequence[int] | None = None, r_peaks: np.ndarray | None = None
) -> list[dict[str, Feature]]:
    """Neuro, cardiac and respiratory features for each whole 30-s epoch of ``recording``.

    ``epochs`` (indices of whole epochs) limits the work and the result to those epochs, in that
    order, with the values the whole-recording call gives them: the live path measures only the
    newest epoch of its context window. ``r_peaks`` are ``psg.features.cardiac.detect_r_peaks`` of the
    recording's ECG when the caller already has them (detecting them is the costliest step).
    """
    from psg.features.cardiac import cardiac_epoch_features
    from psg.features.respiratory import respiratory_epoch_features

    n_epochs = recording.n_epochs
    n_out = n_epochs if epochs is None else len(epochs)
    if epochs is not None and any(not 0 <= e < n_epochs for e in epochs):
        raise PSGError(f"recording {recording.record_id!r}: epochs {list(epochs)} outside its {n_epochs} epochs")
    if recording.gaps:
        every = _by_segment(recording)
        return every if epochs is None else [every[e] for e in epochs]
    parts = (
        neuro_epoch_features(recording, n_epochs, epochs),
        cardiac_epoch_features(recording, n_epochs, epochs, r_peaks=r_peaks),
        respiratory_epoch_features(recording, n_epochs, epochs),
    )
    for part in parts:
        if len(part) != n_out:
            raise PSGError(
                f"recording {recording.record_id!r}: a feature extractor returned {len(part)} epochs, expected {n_out}"
            )
    return [{**neuro, **cardiac, **resp} for neuro, cardiac, resp in zip(*parts, strict=True)]


def _by_segment(recording: Recording) -> list[dict[str, Feature]]:
    """``epoch_features`` of a recording with gaps: each run of whole epochs with no gap in it is measured
    as a recording of its own; gap epochs get every key with None."""
    gap = recording.gap_epochs()
    out: list[dict[str, Feature] | None] = [None] * gap.size
    keys: list[str] = []
    starts = np.flatnonzero(~gap & np.r_[True, gap[:-1]])
    for first in starts:
        last = first
        while last < gap.size and not gap[last]:
            last += 1
        part = epoch_features(_epoch_slice(recording, int(first), int(last)))
        out[first:last] = part
        keys = keys or list(part[0])
    if not keys:  # every epoch touches a gap: the keys of one (all-zero) epoch, all None
        keys = list(epoch_features(_epoch_slice(recording, 0, 1))[0])
    empty = dict.fromkeys(keys)
    return [dict(empty) if features is None else features for features in out]


def _epoch_slice(recording: Recording, first: int, last: int) -> Recording:
    """Epochs ``[first, last)`` of ``recording`` as a recording of their own (signal views, no truth, no gaps)."""
    from psg.detectors.segments import segment_recording
    from psg.timeline import EPOCH_S

    return segment_recording(recording, first * EPOCH_S, last * EPOCH_S)
