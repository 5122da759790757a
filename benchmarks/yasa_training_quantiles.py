"""Real EEG, EOG and EMG feature distributions read from YASA's classifiers, beside our simulator's.

Why: every real-signal check we can run rests on 46 epochs of real EEG, two of them sleep. YASA's LightGBM
classifiers were trained on thousands of real NSRR nights, and LightGBM splits a feature only at the edges
of its histogram bins, which it cuts at equal-count quantiles of the training data (up to 255 bins). The
distinct split thresholds of a feature across the 2000 trees of each of its four classifiers (trained on the
same nights, so sharing the edges) are therefore nearly all of those edges: their quantiles estimate the real
training data's quantiles of that feature, pooled over nights and stages. With K of the 254 edges present, an
estimated quantile's level is off by at most (254 - K) / 254 (the ``bound`` column).

Three things, in order:

1. **Does the method work?** A LightGBM with YASA's parameters trained here on simulated nights, whose true
   quantiles we know: the quantile level at which each estimated quantile really sits (its error).
2. **Real against simulated**, per raw (unsmoothed) feature: q5/q50/q95 in YASA's training data and in the
   simulated training nights the night reference is built from.
3. **A real-anchored reference** (``--anchored-out FILE``): each statistic of the shipped night reference
   moved to the same quantile level of the real distribution (quantile mapping), in the shipped file's format;
   ``--anchor-kinds eog`` moves only the EOG's (``benchmarks/RESULTS.md``: both were tried, neither shipped).

    .venv/bin/python benchmarks/yasa_training_quantiles.py --json benchmarks/results/yasa_training_quantiles.json \
        --plot benchmarks/plots/yasa_training_quantiles.png
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.yasa_reference import SEED, reference_sources
from psg.features.night_reference import DEFAULT_PATH, NightReference, is_shape_feature, load_night_reference
from psg.features.yasa_features import epoch_base_features
from psg.features.yasa_prior import at_yasa_rate
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L

CLASSIFIERS = Path(__file__).resolve().parents[1] / "psg" / "features" / "yasa_classifiers"
#: YASA's training parameters (400 iterations x 5 classes = the 2000 trees of its files, depth 5).
YASA_LGBM = {"n_estimators": 400, "max_depth": 5, "num_leaves": 90, "colsample_bytree": 0.5, "verbose": -1}
LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
#: LightGBM's default histogram size: at most 255 bins, so at most 254 distinct edges (YASA kept the default).
MAX_BIN = 255


def split_thresholds(model_text: str) -> dict[str, np.ndarray]:
    """Feature -> its distinct split thresholds (sorted) in a LightGBM text model."""
    names = re.search(r"^feature_names=(.*)$", model_text, re.M).group(1).split()  # type: ignore[union-attr]
    found: dict[str, list[float]] = {n: [] for n in names}
    features = re.findall(r"^split_feature=(.*)$", model_text, re.M)
    thresholds = re.findall(r"^threshold=(.*)$", model_text, re.M)
    for fs, ts in zip(features, thresholds, strict=True):
        for f, t in zip(fs.split(), ts.split(), strict=True):
            found[names[int(f)]].append(float(t))
    return {n: np.unique(v) for n, v in found.items() if v}


def quantile_level(sorted_values: np.ndarray, values: np.ndarray | float) -> np.ndarray:
    """Where ``values`` fall in a sorted sample, as a quantile level (the fraction of it below them)."""
    return np.searchsorted(sorted_values, values) / sorted_values.size


def real_quantiles() -> dict[str, np.ndarray]:
    """Raw feature -> its distinct thresholds over YASA's four classifiers. They were trained on the same
    nights, so they share each feature's bin edges: the union covers more of them than any one file."""
    found: dict[str, list[np.ndarray]] = {}
    for path in sorted(CLASSIFIERS.glob("clf_*.txt.gz")):
        for name, values in split_thresholds(gzip.open(path, "rt").read()).items():
            if not name.endswith("_norm") and not name.startswith("time_"):
                found.setdefault(name, []).append(values)
    return {name: np.unique(np.concatenate(sets)) for name, sets in found.items()}


def simulated_features(nights: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, (n, m) raw features, (n,) stages) of the reference's simulated training nights, both EEGs."""
    rows, stages, names = [], [], []
    for source in tqdm(reference_sources(nights), desc="simulated nights", unit="night"):
        recording = render(NightSpec(source, seed=SEED, artifacts=True))
        assert recording.timeline is not None
        n = recording.n_epochs
        others = {g: at_yasa_rate(recording.signals[label], n) for g, label in (("eog", EOG_L), ("emg", EMG_CHIN))}
        truth = np.asarray(recording.timeline.stages[:n], dtype=float)
        for label in (EEG_C3, EEG_C4):
            names, features = epoch_base_features({"eeg": at_yasa_rate(recording.signals[label], n), **others})
            rows.append(features[: truth.size])
            stages.append(truth[: features.shape[0]])
    return names, np.concatenate(rows), np.concatenate(stages)


def method_check(names: list[str], features: np.ndarray, stages: np.ndarray) -> dict[str, dict[str, float]]:
    """Train LightGBM (YASA's parameters) on simulated features; per feature, the true quantile level
    (empirical CDF of the training data) at each estimated quantile, and the bound it must stay within."""
    import lightgbm

    keep = stages >= 0
    x, y = features[keep], stages[keep].astype(int)
    model = lightgbm.LGBMClassifier(**YASA_LGBM).fit(x, y)
    estimated = split_thresholds(model.booster_.model_to_string())
    bins = lightgbm.Dataset(x, y, params={"verbose": -1}).construct()
    out = {}
    for j, name in enumerate(names):
        thresholds = estimated.get(f"Column_{j}")
        if thresholds is None or thresholds.size < 20:
            continue
        data = np.sort(x[:, j])
        edges = bins.feature_num_bin(j) - 1
        out[name] = {
            **{f"q{round(u * 100)}": round(float(quantile_level(data, np.quantile(thresholds, u))), 3) for u in LEVELS},
            "edges_used": int(thresholds.size),
            "bound": round(max(0, edges - thresholds.size) / edges, 3),
        }
    return out


def anchored(
    reference: NightReference,
    names: list[str],
    sim: np.ndarray,
    real: dict[str, np.ndarray],
    kinds: tuple[str, ...] = ("eeg", "eog"),
) -> dict:
    """The reference's statistics of the channel ``kinds`` moved to their simulated quantile level in the real
    distribution; the others as they are."""
    stats: dict[str, dict[str, list[float]]] = {}
    for window, by_name in reference.stats.items():
        stats[window] = {}
        for name, triple in by_name.items():
            if name in real and name in names and is_shape_feature(name) and name.split("_", 1)[0] in kinds:
                levels = np.clip(quantile_level(np.sort(sim[:, names.index(name)]), np.array(triple)), 0.0, 1.0)
                stats[window][name] = [float(v) for v in np.quantile(real[name], levels)]
            else:
                stats[window][name] = list(triple)
    return {"format": "sleeplm-night-reference/1", "entries": reference.entries, "stats": stats}


def plot(comparison: dict[str, dict], real: dict[str, np.ndarray], path: Path) -> None:
    """Each feature's simulated q5..q95 (and median) placed on the real distribution's quantile scale: a real
    feature would span 0.05..0.95 around 0.5; the simulator's shows where it sits instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in comparison if is_shape_feature(n)]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(names) + 1.4))
    for y, name in enumerate(names):
        low, median, high = quantile_level(real[name], np.array(comparison[name]["simulated"]))
        off = abs(comparison[name]["sim_median_level"] - 0.5) > 0.25 + comparison[name]["level_bound"]
        colour = "tab:red" if off else "tab:blue"
        ax.plot([low, high], [y, y], color=colour, lw=3, alpha=0.6)
        ax.plot([median], [y], "o", color=colour)
    ax.axvspan(0.25, 0.75, color="0.9", zorder=0, label="real interquartile range")
    ax.axvline(0.5, color="0.5", lw=0.8)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("quantile level in YASA's real training nights (simulated q5..q95, dot: median; red: off)")
    ax.set_title("Simulated training nights against real ones, per YASA feature")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=16, help="simulated training nights (the reference's 16)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--anchored-out", type=Path, default=None, help="write the real-anchored reference here")
    parser.add_argument(
        "--anchor-kinds", nargs="+", default=["eeg", "eog"], choices=["eeg", "eog"], help="whose statistics to anchor"
    )
    parser.add_argument("--plot", type=Path, default=None, help="write the figure here (PNG)")
    args = parser.parse_args()
    real = real_quantiles()
    names, sim, stages = simulated_features(args.nights)
    check = method_check(names, sim, stages)
    levels = [check[n][f"q{round(u * 100)}"] - u for n in check for u in LEVELS]
    within = sum(max(abs(check[n][f"q{round(u * 100)}"] - u) for u in LEVELS) <= check[n]["bound"] for n in check)
    print(
        f"method check: {len(check)} features, quantile-level error median {np.median(np.abs(levels)):.3f}, "
        f"max {np.max(np.abs(levels)):.3f}; within their bound: {within} of {len(check)}"
    )
    comparison = {}
    print(f"{'feature':16s} {'real q5 / q50 / q95':>32s}   {'simulated q5 / q50 / q95':>32s}  level  bound")
    for j, name in enumerate(names):
        if name not in real:
            continue
        r = np.quantile(real[name], (0.05, 0.5, 0.95))
        s = np.quantile(sim[:, j], (0.05, 0.5, 0.95))
        level = float(quantile_level(real[name], s[1]))
        # the i-th present edge is one of the bin edges i .. i + missing: the level is off by at most that
        bound = max(0, MAX_BIN - 1 - real[name].size) / (MAX_BIN - 1)
        comparison[name] = {
            "real": r.round(5).tolist(),
            "simulated": s.round(5).tolist(),
            "sim_median_level": round(level, 3),
            "edges": int(real[name].size),
            "level_bound": round(bound, 3),
        }
        print(
            f"{name:16s} {r[0]:10.4g} {r[1]:10.4g} {r[2]:10.4g}   {s[0]:10.4g} {s[1]:10.4g} {s[2]:10.4g}  "
            f"{level:.2f}  {bound:.2f}"
        )
    if args.anchored_out:
        out = anchored(load_night_reference(DEFAULT_PATH), names, sim, real, tuple(args.anchor_kinds))
        args.anchored_out.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.anchored_out}")
    if args.plot:
        plot(comparison, real, args.plot)
    if args.json:
        result = {"nights": args.nights, "epochs": int(sim.shape[0]), "method_check": check, "comparison": comparison}
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
