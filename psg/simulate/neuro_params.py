"""Per-night parameters of the EEG, EOG and chin EMG renderers, drawn around literature values.

Every table has one value per row of ``stage_tracks.ROWS`` (W, N1, N2, N3, R, arousal). Amplitudes are
standard deviations in uV at C4-A1 for ``SubjectParams.eeg_gain == 1``; the base values follow the
classic stage descriptions (Rechtschaffen & Kales 1968; AASM Manual v2.6, 2020; Silber et al. 2007,
J Clin Sleep Med 3:121) and the band-power profiles of large PSG cohorts (e.g. the NSRR nights YASA was
trained on, Vallat & Walker 2021, eLife 10:e70092):

* W: posterior dominant alpha (8.5-11.5 Hz) with eyes closed, attenuated by eye opening (Berger effect),
  low-voltage beta, highest chin tone;
* N1: alpha drops out, 4-7 Hz theta takes over, vertex sharp waves, slow rolling eye movements;
* N2: theta background, spindles (11-16 Hz, ~3-8/min at central leads; Purcell et al. 2017, Nat Commun
  8:15930) and K-complexes (~1-3/min; Halasz 2005, Sleep Med Rev 9:391);
* N3: >= 20 % of the epoch 0.5-2 Hz waves > 75 uV peak-to-peak (AASM); the background spectrum is
  steepest (aperiodic exponent rises with depth; Lendner et al. 2020, eLife 9:e55092);
* REM: low-voltage mixed frequency with theta and 2-6 Hz sawtooth waves, rapid eye movements, chin atonia.

Per-night multipliers (log-normal) spread these values so that two nights never share one "subject".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psg.simulate.subject import SubjectParams

#: Base EEG component SDs (uV) per row W, N1, N2, N3, R, arousal. "alpha" in W is the eyes-closed value.
BASE_EEG_UV: dict[str, tuple[float, ...]] = {
    "aperiodic": (7.0, 8.0, 9.0, 9.0, 6.5, 8.0),  # 1/f background, 0.5-40 Hz
    "delta": (4.0, 8.0, 11.0, 44.0, 6.5, 6.0),  # 0.5-4 Hz, most power at 0.5-2 Hz (slow waves)
    "theta": (3.0, 10.0, 8.0, 6.0, 7.5, 6.0),  # 4-8 Hz
    "alpha": (15.0, 2.5, 2.5, 2.0, 3.0, 10.0),  # posterior dominant rhythm at the subject's alpha_hz
    "beta": (3.5, 1.8, 1.6, 1.3, 2.2, 4.0),  # 16-30 Hz
}
#: Chin EMG RMS relative to the subject's waking tone: REM atonia is the lowest tone of the night
#: (AASM), arousals bring a burst (required to score an arousal in REM).
BASE_EMG_REL = (1.0, 0.5, 0.4, 0.36, 0.12, 1.2)
#: Eye-movement amplitude (uV at E1/E2 for eog_gain 1) of saccades per row; REMs are the largest.
BASE_SACCADE_UV = (60.0, 25.0, 0.0, 0.0, 110.0, 60.0)


@dataclass(frozen=True)
class NeuroParams:
    """Everything the neuro renderers need beyond ``SubjectParams``, for one night."""

    eeg_uv: dict[str, np.ndarray]  # component -> 6-row SD table (uV), eeg_gain applied
    alpha_hz: float
    theta_hz: float
    alpha_eyes_open: float  # fraction of eyes-closed alpha left with eyes open
    aperiodic_slope: float  # power-law exponent of the 1/f background
    swa_decline: float  # fractional drop of slow-wave amplitude from first to last hour (process S)
    spindle_hz: float
    spindle_per_min: np.ndarray  # 6-row rate table
    spindle_uv: float  # peak amplitude of an average spindle
    kc_per_min: np.ndarray
    kc_uv: float  # peak-to-peak of an average K-complex
    vertex_per_min: np.ndarray
    sawtooth_per_min: np.ndarray
    frontal_pickup: dict[str, float]  # share of each EEG component seen by E1/E2 (frontal sites)
    eog_gain: float
    saccade_uv: np.ndarray
    saccade_per_s_open: float  # saccade rate with eyes open in wake
    rem_saccade_per_s: float  # saccade rate inside a phasic REM burst
    blink_per_min: float
    blink_uv: float
    sem_uv: float  # slow rolling eye movement amplitude in N1
    eyes_open_s: tuple[float, float]  # mean eyes-open / eyes-closed bout lengths in wake
    rem_phasic_s: tuple[float, float]  # mean phasic / tonic bout lengths in REM
    emg_tone_uv: float
    emg_rel: np.ndarray
    twitch_per_min: float  # phasic REM chin twitches
    mains_hz: float

    @classmethod
    def draw(cls, subject: SubjectParams, rng: np.random.Generator) -> NeuroParams:
        def jitter(sd: float, size: int | None = None) -> np.ndarray | float:
            return np.exp(rng.normal(0.0, sd, size))

        eeg = {}
        for name, base in BASE_EEG_UV.items():
            table = np.asarray(base) * jitter(0.12) * jitter(0.08, 6) * subject.eeg_gain
            eeg[name] = table
        # N3 must stay N3 by definition: keep the slow-wave SD where >= 20 % of an epoch exceeds 75 uV
        # p-p (a narrow-band Gaussian process exceeds amplitude a with probability exp(-a^2 / 2 sd^2)).
        eeg["delta"][3] = max(eeg["delta"][3], 40.0)
        spindle_n2 = float(rng.uniform(3.0, 8.0))
        kc_n2 = float(rng.uniform(1.0, 3.0))
        emg_rel = np.asarray(BASE_EMG_REL) * jitter(0.1, 6)
        emg_rel[4] = min(emg_rel[4], 0.8 * emg_rel[1:4].min())  # atonia stays the lowest tone
        return cls(
            eeg_uv=eeg,
            alpha_hz=subject.alpha_hz,
            theta_hz=float(rng.uniform(5.0, 6.5)),
            alpha_eyes_open=float(rng.uniform(0.2, 0.4)),
            aperiodic_slope=float(rng.uniform(1.6, 2.0)),
            swa_decline=float(rng.uniform(0.1, 0.3)),
            spindle_hz=subject.spindle_hz,
            spindle_per_min=np.array([0.0, 0.3, spindle_n2, 0.4 * spindle_n2, 0.0, 0.0]),
            spindle_uv=float(rng.uniform(12.0, 22.0)) * subject.eeg_gain,
            kc_per_min=np.array([0.0, 0.2, kc_n2, 0.5 * kc_n2, 0.0, 0.0]),
            kc_uv=float(rng.uniform(100.0, 180.0)) * subject.eeg_gain,
            vertex_per_min=np.array([0.0, float(rng.uniform(1.5, 4.0)), 0.3, 0.0, 0.0, 0.0]),
            sawtooth_per_min=np.array([0.0, 0.0, 0.0, 0.0, float(rng.uniform(1.0, 3.0)), 0.0]),
            frontal_pickup={"aperiodic": 0.5, "delta": 0.8, "theta": 0.5, "alpha": 0.3, "beta": 0.4},
            eog_gain=subject.eog_gain,
            saccade_uv=np.asarray(BASE_SACCADE_UV) * jitter(0.15) * subject.eog_gain,
            saccade_per_s_open=float(rng.uniform(0.5, 1.5)),
            rem_saccade_per_s=float(rng.uniform(1.0, 2.5)),
            blink_per_min=float(rng.uniform(10.0, 25.0)),
            blink_uv=float(rng.uniform(80.0, 160.0)) * subject.eog_gain,
            sem_uv=float(rng.uniform(40.0, 80.0)) * subject.eog_gain,
            eyes_open_s=(float(rng.uniform(15.0, 40.0)), float(rng.uniform(20.0, 60.0))),
            rem_phasic_s=(float(rng.uniform(4.0, 10.0)), float(rng.uniform(8.0, 25.0))),
            emg_tone_uv=subject.emg_tone_uv,
            emg_rel=emg_rel,
            twitch_per_min=float(rng.uniform(2.0, 8.0)),
            mains_hz=subject.mains_hz,
        )
