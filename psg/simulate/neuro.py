"""Brain and somatic channels of the simulated PSG: EEG C3-A2/C4-A1, EOG E1/E2 and chin EMG.

``render_neuro`` draws the night's neuro parameters (``NeuroParams``), the slow state tracks (stage
mix, arousals, eyes open, REM phasic bursts) and then each channel family from its own random stream,
so changing, say, the EOG never changes the EEG of the same seed. Two couplings between families are
rendered because real recordings show them: muscle activity leaks into the EEG and (more) into the
EOG derivations (Goncharova et al. 2003, Clin Neurophysiol 114:1580), and gross body movements
(frequent in wake, the reason epochs are left unscored) swamp every channel at once.
"""

from __future__ import annotations

import numpy as np

from psg.montage import CHANNELS, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R
from psg.recording import Signal
from psg.simulate.eeg import render_eeg
from psg.simulate.emg import render_emg
from psg.simulate.eog import render_eog
from psg.simulate.movement import movement_burst
from psg.simulate.neuro_params import NeuroParams
from psg.simulate.noise import poisson_times
from psg.simulate.plan import NightPlan, Rendered
from psg.simulate.stage_tracks import StageTracks, stage_tracks

#: Share of chin EMG seen on the EEG and EOG derivations (facial/temporal muscle artifact).
EMG_LEAK = {"eeg": 0.08, "eog": 0.15}
#: Body movements per minute in quiet wake and in unscored (movement/artifact) epochs.
MOVEMENTS_PER_MIN = {"wake": 0.4, "unscored": 4.0}


def render_neuro(plan: NightPlan) -> Rendered:
    """Render EOG-L, EOG-R, EEG C3-A2, EEG C4-A1 and EMG Chin for ``plan`` (uV, 256 Hz per ``CHANNELS``)."""
    fs = CHANNELS[EEG_C3].fs
    n = plan.n_samples(fs)
    params = NeuroParams.draw(plan.subject, plan.rng("neuro.params"))
    tracks = stage_tracks(plan, params.eyes_open_s, params.rem_phasic_s, plan.rng("neuro.tracks"))
    emg = render_emg(params, tracks, fs, n, plan.rng("neuro.emg"))
    eeg = render_eeg(params, tracks, fs, n, plan.rng("neuro.eeg"))
    eog_l, eog_r = render_eog(params, tracks, eeg.frontal, fs, plan.rng("neuro.eog"))
    channels = {
        EOG_L: (eog_l, "eog"),
        EOG_R: (eog_r, "eog"),
        EEG_C3: (eeg.c3, "eeg"),
        EEG_C4: (eeg.c4, "eeg"),
        EMG_CHIN: (emg, "emg"),
    }
    for data, family in channels.values():
        if family != "emg":
            data += EMG_LEAK[family] * emg
    _add_movements(tracks, fs, channels, plan.rng("neuro.movement"))
    signals = {
        label: Signal(label, data.astype(np.float64), fs, CHANNELS[label].unit) for label, (data, _) in channels.items()
    }
    return Rendered(signals=signals)


def _add_movements(
    tracks: StageTracks, fs: float, channels: dict[str, tuple[np.ndarray, str]], rng: np.random.Generator
) -> None:
    """Add 2-10 s body-movement bursts in wake and (many more) in unscored epochs, on every channel."""
    rate = (MOVEMENTS_PER_MIN["wake"] * tracks.weights[0] + MOVEMENTS_PER_MIN["unscored"] * tracks.unscored) / 60.0
    for onset in poisson_times(rng, rate, refractory_s=5.0):
        m = int(rng.uniform(2.0, 10.0) * fs)
        i0 = int(onset * fs)
        for data, family in channels.values():
            piece = data[i0 : i0 + m]
            piece += movement_burst(rng, m, fs, family)[: piece.size]


__all__ = ["render_neuro"]
