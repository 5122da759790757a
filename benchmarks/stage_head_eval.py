"""The stage head on held-out simulated nights: full montage, EEG only, and EEG only as a foreign lab records it.

Held out = the validation timelines of the corpus split (never rendered for training). Each night is
rendered with a seed the training never used, then staged three ways:

* ``full``: every channel at the simulator's rates (what ``sleeplm stage`` sees on our own files);
* ``eeg_only``: one central EEG derivation, nothing else;
* ``eeg_only_foreign``: the same EEG perturbed with the calibration ranges (gain, 1/f background, tilt,
  filters, mains, 50-256 Hz) and cut to a random 30-min excerpt: the held-out evaluation's kind of file.

Which of the stage head's two heads the domain gate chose is counted per variant (``recordings_by_head``).
YASA (EEG only, same epochs) is run beside the model where it can stage (>= 5 min). Accuracy, Cohen's
kappa and the expected calibration error of the reported probabilities; ``uncertain`` counts as wrong.
The few-shot curve fits ``sleeplm adapt``'s lab head on K epochs per stage of the foreign excerpts of half
the nights and tests on the other half, beside the zero-shot stages of the same test epochs (5 draws each).

    .venv/bin/python benchmarks/stage_head_eval.py --nights 10 --json benchmarks/results/stage_head_eval.json \\
        --plot benchmarks/plots/lab_head_few_shot.png
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from sklearn.metrics import cohen_kappa_score

from model_runtime.model.lab_head import fit_lab_head, pick_shots
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.corpus import NightSpec, render, split_of, timeline_sources
from model_runtime.training.stage_head_training import STRONG, crop, expected_calibration_error, perturb
from psg.features.stage_spectra import stage_feature_matrix
from psg.montage import EEG_C3, EEG_C4
from psg.paths import shared_data_dir
from psg.recording import Recording

SHOTS = (1, 2, 5, 10, 20, 50)


def held_out_sources(nights: int) -> list[str]:
    """The first ``nights`` validation timelines of the corpus split (never rendered for training): the
    held-out nights every stage benchmark plays."""
    return [s for s in timeline_sources(shared_data_dir(), 30) if split_of(s) == "validation"][:nights]


def variants(recording: Recording, rng: np.random.Generator) -> dict[str, tuple[Recording, slice]]:
    n = min(recording.n_epochs, len(recording.timeline.stages))
    eeg = Recording("eeg", {EEG_C4: recording.signals[EEG_C4]})
    start = int(rng.integers(0, max(n - 60, 0) + 1))
    excerpt = crop(recording, start, 60)
    foreign = perturb(Recording("f", {k: excerpt.signals[k] for k in (EEG_C3, EEG_C4)}), rng, STRONG)
    return {
        "full": (recording, slice(0, n)),
        "eeg_only": (eeg, slice(0, n)),
        "eeg_only_foreign": (foreign, slice(start, start + 60)),
    }


def yasa_stages(recording: Recording) -> list[str] | None:
    import mne
    import yasa

    sig = recording.get(EEG_C4) or recording.signals[EEG_C3]
    if sig.duration_s < 300:
        return None
    data, fs = sig.data, sig.fs
    if fs < 80:  # YASA needs >= 80 Hz: upsample a 50/64-Hz EEG as a user would
        data, fs = resample_poly(data, 100, int(fs)), 100.0
    raw = mne.io.RawArray(data[None] * 1e-6, mne.create_info(["eeg"], fs, ["eeg"]), verbose="error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hyp = yasa.SleepStaging(raw, eeg_name="eeg").predict()
    values = hyp.hypno.tolist() if hasattr(hyp, "hypno") else list(hyp)
    return [{"WAKE": "W", "REM": "R"}.get(str(s), str(s)) for s in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the few-shot curve")
    args = parser.parse_args()
    lm = SleepLM.load()
    assert lm.stage_head is not None, "no stage head beside the checkpoint"
    sources = held_out_sources(args.nights)
    rng = np.random.default_rng(args.seed)
    pooled: dict[str, dict[str, list]] = {}
    few_shot: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for source in sources:
        recording = render(NightSpec(source, seed=args.seed, artifacts=True))
        truth = np.array(recording.timeline.stages)
        for name, (rec, window) in variants(recording, rng).items():
            features = stage_feature_matrix(rec)
            staged = lm.stage_head.stage_features(features)
            y = truth[window][: len(staged.verdicts)]
            scored = y >= 0
            bucket = pooled.setdefault(
                name, {"y": [], "verdict": [], "conf": [], "yasa": [], "yasa_y": [], "heads": []}
            )
            bucket["heads"].append(staged.head)
            bucket["y"] += [STAGE_LABELS[k] for k in y[scored]]
            bucket["verdict"] += [v for v, s in zip(staged.verdicts, scored, strict=False) if s]
            bucket["conf"] += [p for p, s in zip(staged.probabilities, scored, strict=False) if s]
            if name != "full" and (theirs := yasa_stages(rec)) is not None:
                m = min(len(theirs), len(y))
                bucket["yasa"] += [t for t, s in zip(theirs[:m], scored[:m], strict=True) if s]
                bucket["yasa_y"] += [STAGE_LABELS[k] for k in y[:m][scored[:m]]]
            if name == "eeg_only_foreign":
                x = features.model_input()
                zero_shot = np.asarray(staged.probabilities).argmax(axis=1)
                few_shot.append((lm.stage_head.embed(x)[scored], y[scored], zero_shot[scored]))
        print(f"{Path(source).name}: done", flush=True)
    report = {name: summarise(b) for name, b in pooled.items()}
    report["few_shot_eeg_only_foreign"] = few_shot_curve(few_shot, args.seed)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    if args.plot:
        plot_few_shot(report["few_shot_eeg_only_foreign"], args.plot)


def summarise(bucket: dict[str, list]) -> dict:
    y, verdict = np.array(bucket["y"]), np.array(bucket["verdict"])
    probs = np.array(bucket["conf"])
    best = np.array([STAGE_LABELS[i] for i in probs.argmax(axis=1)])
    out = {
        "epochs": int(len(y)),
        "accuracy": float((verdict == y).mean()),
        "kappa": float(cohen_kappa_score(y, verdict)),
        "uncertain_share": float((verdict == "uncertain").mean()),
        "ece": expected_calibration_error(probs.max(axis=1), best == y),
        "recordings_by_head": dict(Counter(bucket["heads"])),  # the domain gate's choice per recording
    }
    if bucket["yasa"]:
        ty, ys = np.array(bucket["yasa_y"]), np.array(bucket["yasa"])
        out |= {"yasa_epochs": int(len(ty)), "yasa_accuracy": float((ys == ty).mean())}
    return out


def few_shot_curve(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], seed: int, draws: int = 5) -> dict:
    """Lab heads fitted on K epochs per stage of the first half of the nights, tested on the other half beside
    the zero-shot stages of the same test epochs (what the lab had before adapting); mean over ``draws`` draws."""
    half = len(parts) // 2
    fit_x, fit_y = (np.concatenate([p[i] for p in parts[:half]]) for i in (0, 1))
    test_x, test_y, zero_shot = (np.concatenate([p[i] for p in parts[half:]]) for i in (0, 1, 2))
    curve: dict = {"test_epochs": int(len(test_y)), "zero_shot": float((zero_shot == test_y).mean())}
    for k in SHOTS:
        right = []
        for draw in range(draws):
            idx = pick_shots(fit_y, k, np.random.default_rng([seed, draw]))
            head = fit_lab_head(fit_x[idx], fit_y[idx], k)
            right.append(float((head.probabilities(test_x).argmax(axis=1) == test_y).mean()))
        curve[f"K={k}"] = float(np.mean(right))
    return curve


def plot_few_shot(curve: dict, path: Path) -> None:
    """Accuracy of the lab head by K beside the zero-shot line, on the same test epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(SHOTS, [curve[f"K={k}"] for k in SHOTS], "o-", label="lab head (`sleeplm adapt`), mean of 5 draws")
    ax.axhline(curve["zero_shot"], color="0.4", linestyle="--", label="zero-shot stage head, same epochs")
    ax.set(xscale="log", xlabel="scored epochs per stage (K)", ylabel="accuracy", ylim=(0.5, 0.9))
    ax.set_xticks(SHOTS, [str(k) for k in SHOTS])
    ax.set_title(f"Foreign 30-min EEG excerpts, {curve['test_epochs']} held-out test epochs", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
