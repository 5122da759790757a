"""Per-epoch features of a recording: one dict per whole 30-s epoch, aligned to the recording start.

The merged dict is the single source of every number the captions, the rule stager and the live
display show: brain and somatic features from ``psg.features.neuro``, heart rate and HRV from
``psg.features.cardiac``, breathing and oximetry from ``psg.features.respiratory``. A feature is None
where its channel is missing, flat or unusable in that epoch; nothing here raises for a missing channel.

The cardiac and respiratory extractors are imported when ``epoch_features`` runs, not with the
package: they pull in neurokit2 (a slow import), and the modules that only need the neuro band
definitions (captions, the rule stager) should not pay for it.
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
    parts = (
        neuro_epoch_features(recording, n_epochs, epochs),
        cardiac_epoch_features(recording, n_epochs, epochs, r_peaks=r_peaks),
        respiratory_epoch_features(recording, n_epochs, epochs),
    )
    for part in parts:
        if len(part) != n_out:
            raise PSGError(
                f"recording {recording.record_id!r}: a feature extractor returned {len(part)} epochs, "
                f"expected {n_out}"
            )
    return [{**neuro, **cardiac, **resp} for neuro, cardiac, resp in zip(*parts, strict=True)]
