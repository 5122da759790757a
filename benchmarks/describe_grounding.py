"""Do ``sleeplm describe``'s stage_event captions name the events the detectors found, and only those?

Why: on the real Nox A1 recording the caption decoder wrote an obstructive apnea, a desaturation and an
arousal into every epoch, where no detector found one (``psg.captions.grounding``). This counts, per
epoch, the contradictions ``psg.captions.consistency`` finds between a stage_event caption and its
record (the epoch's stage and its detected events, on the channel groups the recording has): for the
decoder's caption as generated (what ``describe`` printed before) and as ``describe`` prints it now; and on
the other levels, the decoder's qualitative words that the number of their own sentence contradicts
(``psg.captions.grounding.consistent_words``, which ``describe`` now applies). Real
recordings: the Nox A1 PSG and the Sleep-EDF wake of ``$SLEEPLM_DATA/real-signals``; simulated: full-montage
apnea nights (``psg.synthetic``, AHI 30) as EDF files written by ``sleeplm simulate``.

    .venv/bin/python benchmarks/describe_grounding.py --json benchmarks/results/describe_grounding.json
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from real_signals import write_rows

from model_runtime.serving.model_api import SleepLM, respiratory_evidence
from model_runtime.serving.night import describe_night, load_night_input, stage_night
from psg.captions import MODALITIES
from psg.captions.availability import channel_groups, recorded_events
from psg.captions.consistency import contradictions
from psg.captions.grounding import consistent_words
from psg.captions.stage_event import in_epoch
from psg.detectors import detect_events
from psg.formats.edf import write_edf
from psg.montage import EPOCH_S
from psg.paths import shared_data_dir
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

#: Contradiction kinds, by a phrase of ``psg.captions.consistency``'s line (first match; else "other").
KINDS = {
    "not in the record": "event named, not detected",
    "does not name": "detected event not named",
    "neither names events": "neither events nor 'No events.'",
    "stage": "stage",
}


def kinds(found: list[str]) -> Counter:
    """Contradictions by kind (``KINDS``)."""
    return Counter(next((kind for phrase, kind in KINDS.items() if phrase in f), "other") for f in found)


def measure(lm: SleepLM, name: str, path: Path, origin: str) -> dict:
    night = load_night_input(path)
    stages = stage_night(lm, night)["stages"]
    detected = detect_events(night.recording)
    events = recorded_events([e.to_event() for e in detected], night.recording)
    groups = channel_groups(night.recording)
    evidence = respiratory_evidence([e.to_dict() for e in detected], night.n_epochs)
    generated = {  # what describe_night gives the decoder
        m: lm.describe(night.x, night.features, modality=m, stages=stages, evidence=evidence, groups=groups)
        for m in MODALITIES
    }
    raw = generated["stage_event"]
    printed = [c["text"] for c in describe_night(lm, night)["captions"]]
    words = {
        m: [consistent_words(t, f)[1] for t, f in zip(texts, night.features, strict=True)]
        for m, texts in generated.items()
        if m != "stage_event"
    }
    row: dict = {"recording": name, "origin": origin, "epochs": night.n_epochs, "detected": len(events)}
    # modality levels: qualitative words of the decoder's that the numbers of their own sentence contradict
    row["decoder_words_contradicted"] = {m: sum(n) for m, n in words.items()}
    row["decoder_captions_with_such_a_word"] = {m: sum(bool(k) for k in n) for m, n in words.items()}
    for way, texts in (("decoder", raw), ("describe", printed)):
        per_epoch = []
        for i, text in enumerate(texts):
            record = {
                "start_s": i * EPOCH_S,
                "stage": stages[i],
                "events": [
                    {
                        "type": e.type,
                        "onset_s": e.onset_s,
                        "duration_s": e.duration_s,
                        "subtype": e.subtype,
                        "channel": e.channel,
                    }
                    for e in events
                    if in_epoch(e, i * EPOCH_S)
                ],
            }
            per_epoch.append(contradictions(record, {"stage_event": text}, groups))
        row[f"{way}_epochs_contradicted"] = sum(bool(f) for f in per_epoch)
        row[f"{way}_contradictions"] = dict(kinds([f for found in per_epoch for f in found]))
        row[f"{way}_example"] = texts[0] if texts else ""
    print(row)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="shared data dir (default $SLEEPLM_DATA)")
    parser.add_argument("--sim-nights", type=int, default=2, help="simulated apnea nights (1.5 h each)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    lm = SleepLM.load()
    real = (args.data or shared_data_dir()) / "real-signals"
    rows = []
    for name in ("nox-a1-2min/subject1.edf", "sleep-edf-short/short_psg.edf"):
        if (real / name).is_file():
            rows.append(measure(lm, name, real / name, "real"))
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.sim_nights):
            path = Path(tmp) / f"apnea{seed}.edf"
            write_edf(simulate(synthetic_timeline(hours=1.5, seed=seed, ahi=30.0), seed=seed), path)
            rows.append(measure(lm, f"simulated apnea night, seed {seed}", path, "simulated"))
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
