"""Stage the real recordings of ``$SLEEPLM_DATA/real-signals`` with the shipped model and with YASA beside it.

These are the only real waveforms we have (see that folder's README): 5 min of a Sleep-EDF night's start
(experts: all W), 6 min of awake eyes-open EEG, 30 s of N3 and 15 s of N2 EEG, 2 min of an unscored Nox A1
PSG. Files that are not EDF are wrapped in a ``Recording`` with montage labels; the EDF files go through the
product's own reader and channel recognition (``load_night_input``), as ``sleeplm stage`` reads them.

    .venv/bin/python benchmarks/real_signals.py --json benchmarks/results/real_signals.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import NightInput, load_night_input, stage_night
from psg.montage import EEG_C3, EEG_C4, EOG_L
from psg.paths import shared_data_dir
from psg.recording import ORIGIN, RECORDED, Recording, Signal


def snippet_nights(root: Path) -> list[tuple[str, NightInput | None, Recording, str]]:
    """(name, night input or None, recording, expert stage) of every real recording we can stage."""
    from psg.features import epoch_features
    from psg.model_input import recording_model_epochs

    out = []
    edf = root / "sleep-edf-short" / "short_psg.edf"
    if edf.is_file():
        night = load_night_input(edf)
        out.append(("sleep-edf-short (Fpz-Cz, Pz-Oz, EOG; 100 Hz)", night, night.recording, "W"))
    yasa = root / "yasa"
    recordings = []
    n3 = yasa / "data_N3_no-spindles_30sec_100Hz.txt"
    if n3.is_file():
        recordings.append(("yasa N3 30 s (100 Hz)", {EEG_C3: (np.loadtxt(n3), 100.0)}, "N3"))
    n2 = yasa / "data_N2_spindles_15sec_200Hz.txt"
    if n2.is_file():
        x = np.loadtxt(n2)  # 15 s: mirrored to one 30-s epoch (the only N2 we have)
        mirrored = np.concatenate([x, x[::-1]])
        recordings.append(("yasa N2 15 s mirrored to 30 s (200 Hz)", {EEG_C3: (mirrored, 200.0)}, "N2"))
    fif = yasa / "data_resting_EO_200Hz_raw.fif"
    if fif.is_file():
        import mne

        raw = mne.io.read_raw_fif(fif, preload=True, verbose="error")
        data = raw.get_data(units="uV")
        names = raw.ch_names
        recordings.append(
            (
                "yasa awake eyes open 6 min (F4-A1, Cz-A2; 200 Hz)",
                {
                    EEG_C4: (data[names.index("F4-A1")], raw.info["sfreq"]),
                    EEG_C3: (data[names.index("CZ-A2")], raw.info["sfreq"]),
                },
                "W",
            )
        )
    for name, channels, truth in recordings:
        # real signals, as a lab's file of them would be read (psg.recording.ORIGIN)
        rec = Recording(
            name, {k: Signal(k, v, fs, "uV") for k, (v, fs) in channels.items()}, metadata={ORIGIN: RECORDED}
        )
        x = recording_model_epochs(rec)
        feats = epoch_features(rec)
        out.append((name, NightInput(Path(name), rec, x, feats, None), rec, truth))
    return out


def write_rows(rows: list[dict], path: Path | None) -> None:
    """A benchmark's result rows as indented JSON at ``path`` (nothing when None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=2))


def yasa_stages(recording: Recording) -> list[str] | None:
    """YASA's stages of the recording's first EEG (+ EOG-L), or None where YASA cannot run."""
    import mne
    import yasa

    eeg = recording.get(EEG_C3) or recording.get(EEG_C4)
    if eeg is None:
        return None
    names, data = ["eeg"], [eeg.data]
    eog = recording.get(EOG_L)
    if eog is not None and eog.fs == eeg.fs:
        names.append("eog")
        data.append(eog.data[: eeg.data.size])
    info = mne.create_info(names, eeg.fs, ["eeg"] + ["eog"] * (len(names) - 1))
    raw = mne.io.RawArray(np.array(data) * 1e-6, info, verbose="error")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hyp = yasa.SleepStaging(raw, eeg_name="eeg", eog_name="eog" if "eog" in names else None).predict()
    except Exception as exc:  # noqa: BLE001 - report why YASA cannot stage this recording
        return [f"YASA failed: {type(exc).__name__}: {exc}"]
    values = hyp.hypno.tolist() if hasattr(hyp, "hypno") else list(hyp)  # yasa >= 0.7 returns a Hypnogram
    return [{"WAKE": "W", "REM": "R"}.get(str(s), str(s)) for s in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--checkpoint", default=None)
    args = parser.parse_args()
    root = (args.data or shared_data_dir()) / "real-signals"
    lm = SleepLM.load(args.checkpoint)
    rows = []
    for name, night, recording, truth in snippet_nights(root):
        staged = stage_night(lm, night)
        ours = staged["stages"]
        theirs = yasa_stages(recording)
        row = {
            "recording": name,
            "truth": truth,
            "epochs": len(ours),
            "model": dict(Counter(ours)),
            "stage_head": staged.get("stage_head"),
            "model_accuracy": float(np.mean([s == truth for s in ours])) if ours else None,
            "model_mean_p_truth": float(
                np.mean([p[("W", "N1", "N2", "N3", "R").index(truth)] for p in staged["probabilities"]])
            )
            if ours
            else None,
            "yasa": dict(Counter(theirs)) if theirs else None,
            "yasa_accuracy": float(np.mean([s == truth for s in theirs])) if theirs else None,
        }
        rows.append(row)
        print(json.dumps(row))
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
