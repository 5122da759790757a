"""ECG (256 Hz, mV) and monitor heart rate (1 Hz, bpm) for one simulated night.

Beat times: the record's real R-peak times when the timeline has them (slpdb, Apnea-ECG), so the
simulated ECG carries real heart-rate dynamics, ectopics and pauses included. Otherwise a heart-rate
process drives an integral pulse-frequency-modulation beat generator:

* stage means below the waking rate (W 0, N1 -2, N2 -4, N3 -6, REM -1 bpm) with stage-dependent slow
  variability (steady in N3, labile in REM and wake; Trinder et al., J Sleep Res 2001);
* respiratory sinus arrhythmia locked to the simulated breath phase (rate up on inspiration),
  largest in N3;
* progressive bradycardia through apneas and a 10-25 bpm surge at every arousal, including those
  terminating respiratory events (Bonsignore et al., 1997).

Morphology: each beat is the ECGSYN sum of Gaussians for P, Q, R, S and T (McSharry et al., IEEE TBME
2003), evaluated at the exact (sub-sample) beat time so R peaks sit where the beats are; the QT
interval follows Bazett's sqrt(RR) scaling. Baseline wander follows respiration plus slow drift.
"""

from __future__ import annotations

import numpy as np

from psg.dsp import bandpass
from psg.montage import CHANNELS, ECG, HR
from psg.recording import Signal
from psg.simulate.plan import NightPlan
from psg.timeline import Stage

FS = CHANNELS[ECG].fs
HR_FS = 4.0  # the heart-rate process is smooth: 4 Hz is ample before beat generation
_STAGE_DELTA = {Stage.W: 0.0, Stage.N1: -2.0, Stage.N2: -4.0, Stage.N3: -6.0, Stage.R: -1.0, Stage.UNSCORED: 0.0}
_STAGE_SD = {Stage.W: 3.0, Stage.N1: 2.0, Stage.N2: 1.5, Stage.N3: 0.8, Stage.R: 3.5, Stage.UNSCORED: 3.0}
_RSA_BPM = {Stage.W: 1.5, Stage.N1: 2.5, Stage.N2: 3.0, Stage.N3: 4.0, Stage.R: 2.0, Stage.UNSCORED: 1.5}
#: ECGSYN waves: (time from R in s at RR = 1 s, amplitude relative to R, Gaussian width in s).
_WAVES = {
    "P": (-0.20, 0.12, 0.025),
    "Q": (-0.035, -0.12, 0.010),
    "R": (0.0, 1.0, 0.010),
    "S": (0.035, -0.25, 0.012),
    "T": (0.28, 0.28, 0.045),
}
_BEAT_WINDOW_S = (-0.35, 0.55)
HR_AVERAGE_BEATS = 4  # bedside monitors and oximeters average the rate over a few beats
MAX_ANNOTATED_PAUSE_S = 6.0  # longer gaps in real annotations are unreadable ECG, not asystole


def beat_times(plan: NightPlan, breath_phase: np.ndarray, breath_fs: float) -> np.ndarray:
    """Real beat times from the timeline, else beats from the simulated heart-rate process."""
    real = plan.timeline.beat_times_s
    if real is not None:
        real = real[(real >= 0.0) & (real < plan.duration_s)]
        return fill_annotation_gaps(real, plan.duration_s, plan.rng("cardiac-gap-fill"))
    rate = heart_rate_process(plan, breath_phase, breath_fs)
    beats_so_far = np.cumsum(rate / 60.0 / HR_FS)
    t = np.arange(rate.size) / HR_FS
    first = plan.rng("cardiac-beats").uniform(0.0, 1.0)
    targets = np.arange(first, beats_so_far[-1], 1.0) if rate.size else np.empty(0)
    return np.interp(targets, beats_so_far, t)


def fill_annotation_gaps(beats: np.ndarray, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Fill stretches without annotated beats longer than ``MAX_ANNOTATED_PAUSE_S`` with beats at the local rate.

    Real beat annotations stop where the ECG was unreadable (slp03 has a 514-s hole) and before the
    first / after the last annotated beat. Rendering those stretches flat would draw an asystole
    nobody had; instead they get beats at the median RR of the 20 real beats around the gap, with 2%
    jitter. Real pauses up to ``MAX_ANNOTATED_PAUSE_S`` (sinus pauses, post-ectopic gaps) are kept as
    they are, so the record's own pauses still reach the detectors.
    """
    if beats.size < 2:
        return beats
    rr = np.diff(beats)
    gaps = [(0.0, float(beats[0]), 0)]
    gaps += [(float(beats[i]), float(beats[i + 1]), int(i)) for i in np.flatnonzero(rr > MAX_ANNOTATED_PAUSE_S)]
    gaps.append((float(beats[-1]), duration_s, rr.size - 1))
    pieces = [beats]
    for start, end, i in gaps:
        if end - start <= MAX_ANNOTATED_PAUSE_S:
            continue
        around = rr[max(0, i - 10) : i + 10]
        around = around[around <= MAX_ANNOTATED_PAUSE_S]
        local_rr = float(np.median(around)) if around.size else 1.0
        n = int((end - start) / local_rr) - 1
        if n > 0:
            times = start + local_rr * np.arange(1, n + 1) + rng.normal(0.0, 0.02 * local_rr, n)
            pieces.append(times[(times > start + 0.3) & (times < end - 0.3)])
    return np.unique(np.concatenate(pieces))


def heart_rate_process(plan: NightPlan, breath_phase: np.ndarray, breath_fs: float) -> np.ndarray:
    """Heart rate in bpm at ``HR_FS`` for the whole night."""
    rng = plan.rng("cardiac-rate")
    n = plan.n_samples(HR_FS)
    t = np.arange(n) / HR_FS
    stage = plan.per_sample(plan.stage_per_s, HR_FS)
    delta, sd, rsa = (np.empty(n) for _ in range(3))
    for key in np.unique(stage):
        where = stage == key
        delta[where] = _STAGE_DELTA[Stage(int(key))]
        sd[where] = _STAGE_SD[Stage(int(key))]
        rsa[where] = _RSA_BPM[Stage(int(key))]
    delta = bandpass(delta, HR_FS, None, 0.02, order=1)
    slow = bandpass(rng.standard_normal(n), HR_FS, None, 0.03, order=1)
    slow *= sd / max(float(np.std(slow)), 1e-12)
    phase = np.interp(t, np.arange(breath_phase.size) / breath_fs, breath_phase)
    rate = plan.subject.hr_bpm + delta + slow + rsa * np.sin(phase)

    for ev in plan.respiratory_events:
        if ev.type.endswith("apnea"):
            i0, i1 = int(ev.onset_s * HR_FS), min(n, int(ev.end_s * HR_FS))
            rate[i0:i1] -= rng.uniform(4.0, 10.0) * np.linspace(0.0, 1.0, max(i1 - i0, 0))
    surge = np.zeros(n)
    for arousal in plan.arousals:
        i0 = int(arousal.onset_s * HR_FS)
        if i0 < n:
            surge[i0] += rng.uniform(10.0, 25.0)
    # rise over ~3 s, decay over ~10 s: a gamma-shaped impulse response
    k = np.arange(int(30 * HR_FS)) / HR_FS
    kernel = (k / 3.0) * np.exp(1.0 - k / 3.0)
    rate += np.convolve(surge, kernel)[:n]
    clipped: np.ndarray = np.clip(rate, 35.0, 160.0)
    return clipped


def render_ecg(plan: NightPlan, beats: np.ndarray, breath_phase: np.ndarray, breath_fs: float) -> Signal:
    """ECG with a PQRST complex at every beat time."""
    rng = plan.rng("cardiac-ecg")
    n = plan.n_samples(FS)
    r_amp = rng.uniform(0.8, 1.6)
    ecg = np.zeros(n)
    if beats.size:
        rr = np.diff(beats, prepend=beats[0] - (beats[1] - beats[0] if beats.size > 1 else 1.0))
        rr = np.clip(rr, 0.3, 2.0)
        resp_mod = 1.0 + 0.05 * np.sin(np.interp(beats, np.arange(breath_phase.size) / breath_fs, breath_phase))
        offsets = np.arange(int(_BEAT_WINDOW_S[0] * FS), int(_BEAT_WINDOW_S[1] * FS))
        first = np.round(beats * FS).astype(np.int64)
        for start in range(0, beats.size, 4096):  # bounded memory: (beats x window) in blocks
            sl = slice(start, start + 4096)
            idx = first[sl, None] + offsets[None, :]
            dt = idx / FS - beats[sl, None]
            scale = np.sqrt(rr[sl, None])
            wave = np.zeros(dt.shape)
            for name, (mu, amp, width) in _WAVES.items():
                centre = mu * scale if name in ("P", "T") else mu
                wave += amp * np.exp(-0.5 * ((dt - centre) / width) ** 2)
            wave *= (r_amp * resp_mod[sl])[:, None]
            ok = (idx >= 0) & (idx < n)
            ecg += np.bincount(idx[ok], weights=wave[ok], minlength=n)
    t = np.arange(n) / FS
    wander = 0.08 * np.sin(np.interp(t, np.arange(breath_phase.size) / breath_fs, breath_phase))
    drift = bandpass(rng.standard_normal(n // 64 + 2), FS / 64, None, 0.05, order=1)
    drift *= 0.1 / max(float(np.std(drift)), 1e-12)
    ecg += wander + np.interp(t, np.arange(drift.size) * 64 / FS, drift)
    ecg += 0.01 * rng.standard_normal(n)
    return Signal(ECG, ecg, FS, CHANNELS[ECG].unit)


def render_monitor_hr(plan: NightPlan, beats: np.ndarray) -> Signal:
    """Heart rate as a monitor displays it: each second, 60 / mean of the last few RR intervals.

    When no beat has come for longer than 1.5 mean RR (a pause, asystole) the display falls as
    60 / time since the last beat, as monitors' rate decays do; values are whole bpm.
    """
    fs = CHANNELS[HR].fs
    n = plan.n_samples(fs)
    t = np.arange(n) / fs
    out = np.zeros(n)
    if beats.size >= 2:
        rr = np.diff(beats)
        kernel = np.ones(HR_AVERAGE_BEATS) / HR_AVERAGE_BEATS
        mean_rr = np.convolve(rr, kernel)[: rr.size]
        counts = np.minimum(np.arange(1, rr.size + 1), HR_AVERAGE_BEATS)
        mean_rr = mean_rr * HR_AVERAGE_BEATS / counts
        last = np.searchsorted(beats, t, side="right") - 1  # index of the last beat at or before t
        valid = last >= 1
        rr_now = np.where(valid, mean_rr[np.clip(last - 1, 0, rr.size - 1)], np.nan)
        since = t - beats[np.clip(last, 0, None)]
        rr_now = np.where(valid & (since > 1.5 * rr_now), since, rr_now)
        out = np.where(valid, np.round(60.0 / rr_now), 0.0)
    return Signal(HR, out, fs, CHANNELS[HR].unit)
