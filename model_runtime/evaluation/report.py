"""How the model evaluation's results are shown: PNG plots and the markdown table for ``benchmarks/RESULTS.md``.

Kept apart from ``model_runtime.evaluation.evaluate`` because it only reads a finished results dict (the one
``evaluate`` returns or ``model_eval.json`` holds): it needs matplotlib, never the model or the nights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_runtime.model.prompts import STAGE_LABELS


def write_plots(result: dict, out_dir: Path) -> list[Path]:
    """Confusion matrices (model vs YASA), the few-shot curve and per-night accuracy bars as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written = []
    staging = result.get("staging") or {}
    candidates = [(name, staging.get(key)) for name, key in (("SleepLM zero-shot", "model_smoothed"), ("YASA", "yasa"))]
    panels = [(n, m) for n, m in candidates if m and m.get("epochs")]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
        for ax, (name, metrics) in zip(axes[0], panels, strict=True):
            cm = np.asarray(metrics["confusion"], dtype=float)
            norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
            for i in range(5):
                for j in range(5):
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
            ax.set_xticks(range(5), STAGE_LABELS)
            ax.set_yticks(range(5), STAGE_LABELS)
            ax.set_xlabel("predicted")
            ax.set_ylabel("truth")
            ax.set_title(f"{name}: acc {metrics['accuracy']:.3f}, F1 {metrics['macro_f1']:.3f}")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "confusion.png"))
    curve = (result.get("few_shot") or {}).get("curve")
    if curve:
        fig, ax = plt.subplots(figsize=(6, 4))
        ks = [r["k"] for r in curve if r["accuracy_mean"] is not None]
        for metric, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            ys = [r[f"{metric}_mean"] for r in curve if r["accuracy_mean"] is not None]
            sds = [r[f"{metric}_sd"] for r in curve if r["accuracy_mean"] is not None]
            ax.errorbar(ks, ys, yerr=sds, marker="o", capsize=3, label=f"linear probe {label}")
        zero = result["few_shot"].get("zero_shot_smoothed_on_test") or {}
        if zero.get("accuracy") is not None:
            ax.axhline(zero["accuracy"], color="grey", ls="--", label="zero-shot accuracy (same test epochs)")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("labelled epochs per class")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("Few-shot staging on held-out timelines")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "few_shot.png"))
    rows = staging.get("nights") or []
    if rows:
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4))
        pos = np.arange(len(rows))
        ax.bar(pos - 0.2, [r["model_smoothed"]["accuracy"] or 0 for r in rows], 0.4, label="SleepLM zero-shot")
        ax.bar(pos + 0.2, [(r.get("yasa") or {}).get("accuracy") or 0 for r in rows], 0.4, label="YASA")
        ax.set_xticks(pos, [f"{r['group']}:{r['night'][:10]}" for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("Staging accuracy per validation night")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "per_night_accuracy.png"))
    return written


def _save(fig, path: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value: object, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _row(*cells: object) -> str:
    return "| " + " | ".join(c if isinstance(c, str) else _fmt(c) for c in cells) + " |"


def summary_markdown(result: dict) -> str:
    """A compact markdown summary of ``result`` for ``benchmarks/RESULTS.md``."""
    staging = result.get("staging") or {}
    human = (result.get("human_agreement_dreem") or {}).get("all") or {}
    nights = result.get("nights", [])
    scored = sum(n["scored_epochs"] for n in nights)
    lines = [
        f"Validation nights: {len(nights)} ({scored} scored epochs), checkpoint `{result.get('checkpoint')}`",
        "",
        _row("Staging (same epochs)", "accuracy", "macro-F1", "kappa"),
        "|---|---|---|---|",
    ]
    for key, name in (
        ("model_smoothed", "SleepLM zero-shot, smoothed"),
        ("model_raw", "SleepLM zero-shot, raw"),
        ("yasa", "YASA on the same simulated signals"),
    ):
        m = staging.get(key) or {}
        lines.append(_row(name, m.get("accuracy"), m.get("macro_f1"), m.get("kappa")))
    lines.append(
        _row(
            f"Dreem scorer vs majority of the other four ({human.get('nights', 0)} nights)",
            human.get("mean_accuracy"),
            human.get("mean_macro_f1"),
            human.get("mean_kappa"),
        )
    )
    retrieval = result.get("retrieval") or {}
    if retrieval.get("epochs"):
        title = f"Retrieval among {retrieval['epochs']} epochs ({retrieval['distinct_captions']} distinct captions)"
        lines += ["", _row(title, "R@1", "R@5", "R@10"), "|---|---|---|---|"]
        for key, name in (
            ("signal_to_caption", "signal -> caption (same text)"),
            ("caption_to_signal", "caption -> signal (same text)"),
            ("signal_to_caption_stage_events", "signal -> caption (same stage + events)"),
            ("caption_to_signal_stage_events", "caption -> signal (same stage + events)"),
        ):
            r = retrieval[key]
            lines.append(_row(name, r["R@1"], r["R@5"], r["R@10"]))
    captions = result.get("captions") or {}
    if captions:
        lines += ["", _row("stage_event captions", "stated stage = truth", "resp. P", "resp. R", "resp. F1")]
        lines.append("|---|---|---|---|---|")
        for key, name in (
            ("model_stage", "generated, model's stage as prefix"),
            ("decoder_alone", "generated, prefix '?' (decoder alone)"),
            ("reference", "reference captions (sanity)"),
        ):
            c = captions[key]
            m = c["respiratory_mention"]
            name = f"{name}, {c['epochs']} epochs"
            lines.append(_row(name, c["stated_stage_accuracy"], m["precision"], m["recall"], m["f1"]))
    query = result.get("query") or {}
    if query:
        lines += ["", _row("Query", "precision@top (ucddb/synthetic)", "precision@top (all)", "base rate", "nights")]
        lines.append("|---|---|---|---|---|")
        for text, q in query.items():
            lines.append(
                _row(
                    f"'{text}', top {q['top']}",
                    q["mean_precision_ucddb_synthetic"],
                    q["mean_precision_all"],
                    q["mean_base_rate"],
                    str(len(q["nights"])),
                )
            )
    few = result.get("few_shot") or {}
    if few.get("curve"):
        lines += ["", _row(f"Few-shot probe, K per class ({few['test_epochs']} test epochs)", "accuracy", "macro-F1")]
        lines.append("|---|---|---|")
        for r in few["curve"]:
            acc = f"{_fmt(r['accuracy_mean'])} ± {_fmt(r['accuracy_sd'])}"
            f1 = f"{_fmt(r['macro_f1_mean'])} ± {_fmt(r['macro_f1_sd'])}"
            lines.append(_row(str(r["k"]), acc, f1))
    speed = result.get("speed")
    if speed:
        plain = ", ".join(f"{k} {_fmt(v, 2)}" for k, v in speed.items() if not isinstance(v, (dict, list)))
        lines += ["", f"Speed: {plain}"]
    verdicts = {True: "pass", False: "FAIL", None: "n/a"}
    checks = ", ".join(f"{k} {verdicts[v]}" for k, v in (result.get("passes") or {}).items())
    lines += ["", f"Criteria: {checks}"]
    return "\n".join(lines)
