"""The arousal detector's two numbers on real EEG beside the simulator's: the sleep-like share and the power ratio.

Why: the detector (``psg.detectors.arousal``) scores an arousal where the fast bands rise ``POWER_RATIO`` times
over their preceding 10-s median, and only from a baseline whose fast share is under ``MAX_SLEEP_FAST_SHARE``.
Both were first set on simulated nights; we hold no real scored arousal, so this prints what real EEG can tell:

* the fast share per 2-s window of real sleep (YASA's N2 and N3 snippets) and real wake (YASA's eyes-open
  recording, Sleep-EDF, the Nox A1 start), as recorded and at 50 Hz;
* the median fast power of each real recording, and of real wake over real sleep (different subjects and
  labs: indicative only);
* the largest rise of real sleep over its own preceding median;
* the peak rise of every simulated arousal scored in sleep (3 ucddb nights, EEG at 50 Hz, seed 0).

    .venv/bin/python benchmarks/arousal_baseline.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal as sps

from psg.detectors.arousal import BASELINE_S, STEP_S, _fast_power, _preceding_median
from psg.formats import read_mapped_edf, read_timeline
from psg.montage import EEG_C3, EEG_C4
from psg.paths import shared_data_dir
from psg.recording import Signal
from psg.simulate.neuro import render_neuro
from psg.simulate.plan import make_plan
from psg.timeline import Stage

#: The detector's baseline: the preceding 10 s of 2-s windows.
BASELINE_WINDOWS = int(round(BASELINE_S / STEP_S))


def at_rate(x: np.ndarray, fs: float, rate: float) -> tuple[np.ndarray, float]:
    return (x, fs) if rate >= fs else (sps.resample_poly(x, int(rate), int(fs)), rate)


def window_power(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per 2-s window: fast power and fast share (the detector's own computation)."""
    _, power, share, _ = _fast_power([Signal(EEG_C3, x, fs, "uV")])
    return power, share


def rises(power: np.ndarray) -> np.ndarray:
    """Each window's fast power over its preceding 10-s median (the detector's ratio), after the first 10 s."""
    return (power / _preceding_median(power, BASELINE_WINDOWS))[BASELINE_WINDOWS:]


def real_eeg(root: Path) -> dict[str, tuple[np.ndarray, float, str]]:
    """(samples in uV, rate, 'sleep' or 'wake') of each real EEG we hold."""
    import mne

    snippets = root / "yasa"
    n2 = np.loadtxt(snippets / "data_N2_spindles_15sec_200Hz.txt")
    out = {
        "YASA N2 snippet": (n2, 200.0, "sleep"),
        "YASA N2 snippet, mirrored x4": (
            np.tile(np.r_[n2, n2[::-1]], 2),
            200.0,
            "sleep",
        ),
        "YASA N3 snippet": (np.loadtxt(snippets / "data_N3_no-spindles_30sec_100Hz.txt"), 100.0, "sleep"),
    }
    raw = mne.io.read_raw_fif(snippets / "data_resting_EO_200Hz_raw.fif", preload=True, verbose="error")
    for name, trace in zip(raw.ch_names, raw.get_data(units="uV"), strict=True):
        out[f"YASA awake eyes open {name}"] = (trace, float(raw.info["sfreq"]), "wake")
    for name, path in (("Sleep-EDF", "sleep-edf-short/short_psg.edf"), ("Nox A1", "nox-a1-2min/subject1.edf")):
        recording, _ = read_mapped_edf(root / path)
        for slot in (EEG_C3, EEG_C4):
            sig = recording.signals[slot]
            out[f"{name} {slot}"] = (sig.data, sig.fs, "wake")
    return out


def simulated_rises(data: Path, nights: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """On simulated nights (EEG at 50 Hz): the peak rise inside each arousal scored in sleep, and the rise of
    every N2 window at least 15 s away from any arousal (the background a threshold must stay above)."""
    peaks, background = [], []
    for stage_file in sorted((data / "ucddb").glob("ucddb*_stage.txt"))[:nights]:
        timeline = read_timeline(stage_file)
        plan = make_plan(timeline, seed=0)
        rendered = render_neuro(plan).signals
        signals = [Signal(k, *at_rate(rendered[k].data, rendered[k].fs, 50.0), "uV") for k in (EEG_C3, EEG_C4)]
        times, power, _, _ = _fast_power(signals)
        ratio = power / _preceding_median(power, BASELINE_WINDOWS)
        stages = timeline.stages[np.clip((times // timeline.epoch_s).astype(int), 0, timeline.stages.size - 1)]
        near = np.zeros(times.size, dtype=bool)
        for arousal in plan.arousals:
            inside = (times >= arousal.onset_s) & (times <= arousal.end_s)
            near |= (times >= arousal.onset_s - 15.0) & (times <= arousal.end_s + 15.0)
            if inside.any() and stages[inside][0] != Stage.W:
                peaks.append(float(ratio[inside].max()))
        background.append(ratio[(stages == Stage.N2) & ~near])
    return np.array(peaks), np.concatenate(background)


def main() -> None:
    data = shared_data_dir()
    medians: dict[str, tuple[float, str]] = {}
    print("fast share per 2-s window: median (10th-90th percentile), as recorded | at 50 Hz")
    for name, (x, fs, state) in real_eeg(data / "real-signals").items():
        power, share = window_power(x, fs)
        power_50, share_50 = window_power(*at_rate(x, fs, 50.0))
        p10, p50, p90 = np.percentile(share, [10, 50, 90])
        print(f"  {name} ({state}, {fs:g} Hz): {p50:.3f} ({p10:.3f}-{p90:.3f}) | {np.median(share_50):.3f}")
        medians[name] = (float(np.median(power)), state)
        if state == "sleep":
            own, own_50 = rises(power), rises(power_50)
            print(f"    rise over its preceding median: 90th percentile {np.percentile(own, 90):.2f}x,", end=" ")
            print(f"largest {own.max():.2f}x | at 50 Hz {np.percentile(own_50, 90):.2f}x, {own_50.max():.2f}x")
    sleep = [m for m, state in medians.values() if state == "sleep"]
    print("median fast power of real wake over real sleep (each sleep snippet):")
    for name, (m, state) in medians.items():
        if state == "wake":
            print(f"  {name}: " + ", ".join(f"{m / s:.1f}x" for s in sleep))
    peaks, background = simulated_rises(data)
    p10, p50 = np.percentile(peaks, [10, 50])
    print(f"simulated arousals in sleep (3 ucddb nights, 50 Hz): {peaks.size}, peak rise median {p50:.1f}x,", end=" ")
    print(f"10th percentile {p10:.1f}x; N2 background 90th percentile {np.percentile(background, 90):.2f}x")


if __name__ == "__main__":
    main()
