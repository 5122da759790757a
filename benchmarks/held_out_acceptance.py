"""Issue 12's acceptance measurement, runnable wherever scored recordings are: the held-out files, or ours.

Why: issue 12 is decided on held-out, expert-scored real recordings that are not on this machine (EEG-only
30-min excerpts at 50-200 Hz with clinical labels, and a full clinical montage at 50 Hz). This script is that
measurement, so whoever holds those files gets the issue's numbers, per recording, with one command, and we
get the same numbers, by the same code, on the files we do hold. Per recording it runs exactly the issue's
commands in a subprocess, ``sleeplm stage FILE --json`` and ``sleeplm detect FILE --json`` (no option; a
scoring file named with ``--pair`` is passed as ``--scoring``, which adds the truth to the output and changes
no result), and YASA 0.8 itself on the same EEG (+ EOG where the file has one) as our reader reads it, then
reports:

* staging, on the epochs the scoring stages: the reported stage's accuracy (``uncertain`` counts as wrong),
  the most likely stage's, YASA's on the same epochs, and the expected calibration error of the reported
  probabilities (10 bins of the top probability against the most likely stage being right);
* detection: the scored respiratory events found (one-to-one by overlap, ``psg.detectors.agreement``), the
  detected ones matching none per 10 min, and the asystoles and bradycardias reported;
* each of the issue's targets, met or not. A recording with airflow, effort or ECG mapped is a full montage
  (its own staging target, and the detection targets); the pooled staging targets cover every recording.

Truth is what the CLI finds: the file's own EDF+ annotations, a scoring beside it (``psg.formats.scoring``), or
the one named by ``--pair``. A file the CLI refuses (exit 2: no EEG, nothing recognised, annotation-only) is
listed with the CLI's message and counts nowhere.

    .venv/bin/python benchmarks/held_out_acceptance.py HELD_OUT_DIR --json held_out.json --plot held_out.png
    .venv/bin/python benchmarks/held_out_acceptance.py --pair PSG.edf HYPNOGRAM.edf
    .venv/bin/python benchmarks/held_out_acceptance.py --twins 6 --json benchmarks/results/held_out_twins.json

``--twins N`` first writes the held-out set's simulated twin from N held-out simulated nights (seed 7, with
artifacts): per night one 30-min EEG-only excerpt with ``C3-A1`` / ``CZ-A1`` at 50, 100 or 200 Hz in turn, and
one 30-min full montage at 50 Hz with an inverted ECG and no SpO2 (``full_montage_50hz.excerpt``), each an
EDF+ from another writer with the scoring as its annotations, and measures those.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from full_montage_50hz import EXCERPT_EPOCHS, excerpt, scored_events
from real_rates import for_yasa, resampled, write_clinical_edf
from real_signals import snippet_nights, write_rows, yasa_stages
from stage_head_eval import held_out_sources
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.serving.night import load_night_input
from model_runtime.training.corpus import NightSpec, render
from model_runtime.training.stage_head_training import crop, expected_calibration_error
from psg.detectors.agreement import match_events
from psg.montage import ABD, AF, ECG, EEG_C3, EEG_C4, EPOCH_S, THX
from psg.paths import shared_data_dir
from psg.recording import Recording
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event, Stage, Timeline

#: The issue's targets.
POOLED_ACCURACY = 0.75
FULL_MONTAGE_ACCURACY = 0.70
MAX_ECE = 0.15
MIN_EVENTS_FOUND = 0.50
MAX_FALSE_PER_10_MIN = 1.0
RHYTHM_EVENTS = ("asystole", "bradycardia")
#: Slots that make a recording a full montage rather than an EEG excerpt.
FULL_MONTAGE_SLOTS = (AF, THX, ABD, ECG)
PSG_SUFFIXES = (".edf", ".bdf", ".rec")
TWIN_EEG_RATES = (50.0, 100.0, 200.0)


def sleeplm_json(command: str, path: Path, scoring: Path | None) -> tuple[dict | None, str]:
    """``sleeplm COMMAND PATH --json`` as a user runs it: (its JSON, "") or (None, the CLI's last stderr line)."""
    args = [sys.executable, "-m", "sleeplm", command, str(path), "--json"]
    if scoring is not None:
        args += ["--scoring", str(scoring)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return None, f"exit {done.returncode}: {lines[-1] if lines else '(no message)'}"
    return json.loads(done.stdout), ""


def staging_row(staged: dict, theirs: list[str] | None) -> dict:
    """The staging numbers of one recording on its scored epochs (none scored: ``epochs`` 0)."""
    truth = staged.get("truth") or []
    stages, probs = staged["stages"], np.asarray(staged["probabilities"], dtype=float)
    scored = [i for i, t in enumerate(truth[: len(stages)]) if t in STAGE_LABELS and stages[i] != "gap"]
    labels = np.array([truth[i] for i in scored], dtype=object)
    best = np.array([STAGE_LABELS[int(probs[i].argmax())] for i in scored], dtype=object)
    yasa = theirs if theirs and theirs[0] in STAGE_LABELS else None
    yasa_scored = [k for k, i in enumerate(scored) if yasa is not None and i < len(yasa)]
    return {
        "epochs": len(scored),
        "right": int(sum(stages[i] == truth[i] for i in scored)),
        "best_right": int((best == labels).sum()),
        "uncertain": int(sum(stages[i] == "uncertain" for i in scored)),
        "confidence": [float(probs[i].max()) for i in scored],
        "correct": (best == labels).tolist(),
        "yasa_epochs": len(yasa_scored),
        "yasa_right": int(sum(yasa[scored[k]] == labels[k] for k in yasa_scored)) if yasa else 0,
        "yasa_note": None if yasa is not None else (theirs[0] if theirs else "no EEG YASA can read"),
        "stage_head": staged.get("stage_head"),
        "truth_counts": {s: int((labels == s).sum()) for s in STAGE_LABELS if (labels == s).any()},
    }


def detection_row(detected: dict, scored: list[Event] | None, minutes: float) -> dict:
    """Rhythm events, and respiratory events found against the scored ones with the false ones per 10 min
    (``scored`` None, for an unscored recording or one without airflow or effort: only how many were
    detected; a scoring without events scores none)."""
    events = detected["events"]
    found = [Event(e["type"], e["onset_s"], e["duration_s"]) for e in events if e["type"] in RESPIRATORY_EVENT_TYPES]
    row: dict = {
        "detected_events": len(found),
        "minutes": round(minutes, 1),
        **{f"{kind}_count": sum(e["type"] == kind for e in events) for kind in RHYTHM_EVENTS},
    }
    if scored is None:
        return row
    match = match_events(found, scored)
    false_rate = round(match.fp / (minutes / 10.0), 3) if minutes > 0 else None
    return {
        **row,
        "scored_events": len(scored),
        "found_events": match.tp,
        "false_events": match.fp,
        "false_per_10min": false_rate,
    }


def measure(path: Path, scoring: Path | None) -> dict:
    """One recording through the CLI (stage, detect) and YASA; the CLI's refusal where it refuses."""
    row: dict = {"file": str(path), "scoring": str(scoring) if scoring else None}
    staged, why = sleeplm_json("stage", path, scoring)
    if staged is None:
        return {**row, "refused": why}
    recording = load_night_input(path, scoring=scoring).recording
    slots = staged["channels"]["slots"]
    row["full_montage"] = any(slot in slots for slot in FULL_MONTAGE_SLOTS)
    row["eeg"] = {slot: slots[slot]["file_label"] for slot in (EEG_C3, EEG_C4) if slot in slots}
    row["eeg_fs"] = sorted({slots[slot]["fs"] for slot in (EEG_C3, EEG_C4) if slot in slots})
    row["staging"] = staging_row(staged, yasa_stages(for_yasa(recording)))
    detected, why = sleeplm_json("detect", path, scoring)
    if detected is None:
        row["detection"] = {"refused": why}
        return row
    timeline = recording.timeline
    breathing = any(slot in slots for slot in (AF, THX, ABD))
    row["airflow"] = breathing
    scored = list(timeline.events_of(*RESPIRATORY_EVENT_TYPES)) if timeline is not None and breathing else None
    row["detection"] = detection_row(detected, scored, recording.n_epochs * EPOCH_S / 60.0)
    return row


def pooled(rows: list[dict], full_montage: bool | None = None) -> dict | None:
    """Pooled staging (and, for full montages, detection) over the measured rows; None when none is scored."""
    chosen = [r for r in rows if "staging" in r and (full_montage is None or r["full_montage"] == full_montage)]
    staging = [r["staging"] for r in chosen if r["staging"]["epochs"]]
    if not staging:
        return None
    epochs = sum(s["epochs"] for s in staging)
    yasa_epochs = sum(s["yasa_epochs"] for s in staging)
    out: dict = {
        "recordings": len(staging),
        "epochs": epochs,
        "accuracy": round(sum(s["right"] for s in staging) / epochs, 3),
        "best_stage_accuracy": round(sum(s["best_right"] for s in staging) / epochs, 3),
        "uncertain": sum(s["uncertain"] for s in staging),
        "ece": round(
            expected_calibration_error(
                np.concatenate([s["confidence"] for s in staging]),
                np.concatenate([s["correct"] for s in staging]).astype(float),
            ),
            3,
        ),
        "yasa_epochs": yasa_epochs,
        "yasa_accuracy": round(sum(s["yasa_right"] for s in staging) / yasa_epochs, 3) if yasa_epochs else None,
    }
    detection = [r["detection"] for r in chosen if "scored_events" in r.get("detection", {})]
    scored = sum(d["scored_events"] for d in detection)
    minutes = sum(d["minutes"] for d in detection)
    if scored and minutes:
        out["events_found"] = round(sum(d["found_events"] for d in detection) / scored, 3)
        out["false_per_10min"] = round(sum(d["false_events"] for d in detection) / (minutes / 10.0), 3)
    rhythm = [r["detection"] for r in chosen if "asystole_count" in r.get("detection", {})]
    if rhythm:
        out.update({f"{k}_count": sum(d[f"{k}_count"] for d in rhythm) for k in RHYTHM_EVENTS})
    return out


def targets(every: dict | None, full: dict | None) -> list[dict]:
    """Each issue-12 target measurable on these recordings: its value and whether it is met."""
    checks: list[tuple[str, float | None, bool | None]] = []
    if every is not None:
        yasa = every["yasa_accuracy"]
        checks += [
            ("pooled accuracy >= 0.75", every["accuracy"], every["accuracy"] >= POOLED_ACCURACY),
            ("pooled accuracy >= YASA's", yasa, None if yasa is None else every["accuracy"] >= yasa),
            ("ECE <= 0.15", every["ece"], every["ece"] <= MAX_ECE),
        ]
    if full is not None:
        checks.append(("full montage accuracy >= 0.70", full["accuracy"], full["accuracy"] >= FULL_MONTAGE_ACCURACY))
        if "events_found" in full:
            checks += [
                ("full montage: >= 50 % of scored events found", full["events_found"], full["events_found"] >= 0.5),
                ("full montage: <= 1 false event / 10 min", full["false_per_10min"], full["false_per_10min"] <= 1.0),
            ]
        if "asystole_count" in full:
            rhythm = full["asystole_count"] + full["bradycardia_count"]
            checks.append(("full montage: no asystole or bradycardia", rhythm, rhythm == 0))
    return [{"target": name, "value": value, "met": met} for name, value, met in checks]


def write_twins(nights: int, folder: Path, seed: int = 7) -> list[Path]:
    """The held-out set's simulated twin (module docstring): two scored EDF+ files per held-out night."""
    rng = np.random.default_rng(seed)
    paths = []
    for k, source in enumerate(tqdm(held_out_sources(nights), desc="writing twins", unit="night")):
        recording = render(NightSpec(source, seed=seed, artifacts=True))
        assert recording.timeline is not None
        n = min(recording.n_epochs, len(recording.timeline.stages))
        for kind in ("eeg", "full"):
            start = int(rng.integers(0, n - EXCERPT_EPOCHS + 1))
            scoring = excerpt_scoring(recording, start)
            if kind == "eeg":
                rate = TWIN_EEG_RATES[k % len(TWIN_EEG_RATES)]
                brain = crop(recording, start, EXCERPT_EPOCHS)
                clip = Recording(recording.record_id, {s: resampled(brain.signals[s], rate) for s in (EEG_C3, EEG_C4)})
                name = f"{k:02d}_eeg_{rate:.0f}hz.edf"
            else:
                clip, name = excerpt(recording, start), f"{k:02d}_full_montage_50hz.edf"
            paths.append(write_clinical_edf(clip, None, folder / name, scoring=scoring))
    return paths


def excerpt_scoring(recording: Recording, start: int) -> Timeline:
    """The scored stages and respiratory events of ``EXCERPT_EPOCHS`` from epoch ``start``, on the excerpt's clock."""
    assert recording.timeline is not None
    stages = recording.timeline.stages[start : start + EXCERPT_EPOCHS]
    return Timeline(recording.record_id, stages, scored_events(recording, start))


def write_real(folder: Path) -> list[Path]:
    """Our real recordings (``real_signals.snippet_nights``) as clinical EDF+ files scored with their one
    expert stage on every epoch, and the unscored Nox A1 PSG as it is (detection only)."""
    root = shared_data_dir() / "real-signals"
    paths = []
    for k, (name, _night, recording, stage) in enumerate(snippet_nights(root)):
        scoring = Timeline(name, np.full(recording.n_epochs, int(Stage.from_label(stage))))
        paths.append(write_clinical_edf(recording, None, folder / f"real_{k}_{stage}.edf", scoring=scoring))
    nox = root / "nox-a1-2min" / "subject1.edf"
    return paths + ([nox] if nox.is_file() else [])


def psg_files(items: list[Path]) -> list[Path]:
    """The PSG files named, and those inside the folders named (sorted)."""
    out: list[Path] = []
    for item in items:
        if item.is_dir():
            out += sorted(p for p in item.iterdir() if p.suffix.lower() in PSG_SUFFIXES)
        elif item.is_file():
            out.append(item)
        else:
            raise SystemExit(f"error: {item}: no such file or folder")
    return out


def print_table(rows: list[dict]) -> None:
    print(
        "| recording | EEG (Hz) | epochs | ours | best | YASA | uncertain | events found / scored | false / 10 min "
        "| asystole / brady |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = Path(r["file"]).name
        if "refused" in r:
            print(f"| {name} | refused: {r['refused']} |||||||||")
            continue
        s, d = r["staging"], r.get("detection", {})
        n = s["epochs"]
        ours, best = (f"{s['right'] / n:.3f}", f"{s['best_right'] / n:.3f}") if n else ("unscored", "-")
        yasa = f"{s['yasa_right'] / s['yasa_epochs']:.3f}" if s["yasa_epochs"] else (s["yasa_note"] or "-")
        unscored = f"unscored, {d.get('detected_events')} detected" if r["airflow"] else "no airflow"
        events = f"{d['found_events']} / {d['scored_events']}" if "scored_events" in d else d.get("refused", unscored)
        rhythm = f"{d['asystole_count']} / {d['bradycardia_count']}" if "asystole_count" in d else "-"
        print(
            f"| {name} | {', '.join(f'{f:g}' for f in r['eeg_fs'])} | {n} | {ours} | {best} | {yasa} "
            f"| {s['uncertain']} | {events} | {d.get('false_per_10min', '-')} "
            f"| {rhythm} |"
        )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if "staging" in r and r["staging"]["epochs"]]
    names = [Path(r["file"]).stem for r in shown]
    ours = [r["staging"]["right"] / r["staging"]["epochs"] for r in shown]
    yasa = [r["staging"]["yasa_right"] / max(1, r["staging"]["yasa_epochs"]) for r in shown]
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(shown) + 1.5))
    y = np.arange(len(shown))
    ax.barh(y - 0.2, ours, 0.4, label="sleeplm stage (reported stage)")
    ax.barh(y + 0.2, yasa, 0.4, label="YASA 0.8 on the same EEG")
    ax.axvline(POOLED_ACCURACY, color="k", linestyle="--", linewidth=1, label="pooled target 0.75")
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy on the scored epochs")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="PSG files, or folders of them")
    parser.add_argument("--pair", nargs=2, action="append", type=Path, default=[], metavar=("PSG", "SCORING"))
    parser.add_argument("--real", action="store_true", help="also measure $SLEEPLM_DATA/real-signals")
    parser.add_argument("--twins", type=int, default=0, help="also measure N held-out simulated nights' twin")
    parser.add_argument("--twins-dir", type=Path, default=None, help="keep the twin files here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args(argv)
    jobs: list[tuple[Path, Path | None]] = [(p, None) for p in psg_files(args.paths)]
    jobs += [(psg, scoring) for psg, scoring in args.pair]
    with tempfile.TemporaryDirectory() as tmp:
        if args.real:
            jobs += [(p, None) for p in write_real(Path(tmp))]
        if args.twins:
            folder = args.twins_dir or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            jobs += [(p, None) for p in write_twins(args.twins, folder)]
        if not jobs:
            parser.error("name PSG files or folders, --pair PSG SCORING, --real or --twins N")
        rows = [measure(path, scoring) for path, scoring in tqdm(jobs, desc="recordings", unit="file")]
    every, full = pooled(rows), pooled(rows, full_montage=True)
    report = {
        "recordings": rows,
        "pooled": every,
        "eeg_only": pooled(rows, full_montage=False),
        "full_montage": full,
        "targets": targets(every, full),
    }
    print_table(rows)
    for item in report["targets"]:
        met = {True: "met", False: "NOT met", None: "not measurable"}[item["met"]]
        print(f"{item['target']}: {item['value']} ({met})")
    write_rows([report], args.json)
    if args.plot:
        plot(rows, args.plot)
    return report


if __name__ == "__main__":
    main()
