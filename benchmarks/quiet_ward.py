"""Alerts a nurse sees per bed-hour, and caption contradictions, on simulated nights with artifacts (issue 15).

The live path runs unchanged, broker-free: each night (several cohorts: synthetic apnea nights of
different severity and held-out shared timelines, rendered by ``psg.simulate`` with artifacts) is cut
into bridge-like chunks -> ``Epocher`` (quality flags, detector events, per-second SpO2/HR) ->
the SleepLM runtime (stage, captions, model advisories) -> ``AlertMonitor`` (the alert engine).

* **Contradictions**: every caption record through ``psg.captions.consistency.contradictions``, as the
  inference agent counts them for ``sleeplm_caption_contradictions_total``.
* **Shown alerts**: every raised alert except advisories (the ward folds those: they are counted apart).
  A shown alert is *non-actionable* when the simulator's truth holds nothing of its kind within 60 s
  of its evidence span: a desaturation or critical SpO2 alert without a truth desaturation, an apnea
  cluster without a truth apnea/hypopnea, a technical alert without a rendered artifact on that
  group's channels.
* **Advisories**: advisory alerts raised (episodes: one per bed per class per episode) and, for
  comparison, how many per-epoch per-type advisories the model emitted and how many alerts the engine
  raised from them before the grouping (one per type, ended after 60 s clear: a type recurring after
  two clear epochs raised a new one).

    .venv/bin/python benchmarks/quiet_ward.py [--hours 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_runtime.serving.caption_records import inference_records  # noqa: E402
from model_runtime.serving.runtimes import load_runtime  # noqa: E402
from model_runtime.training.corpus import NightSpec, render  # noqa: E402
from psg.alerts.monitor import AlertMonitor  # noqa: E402
from psg.captions.consistency import contradictions  # noqa: E402
from psg.epoching.epocher import Epocher  # noqa: E402
from psg.json_codec import decode_json, encode_json
from psg.timeline import RESPIRATORY_EVENT_TYPES  # noqa: E402
from tests.stream_agents.chunking import START, chunk_recording  # noqa: E402  (the bridge's chunking)

COHORTS = ("synthetic:4101:10", "synthetic:4102:30", "synthetic:4103:60")
TRUTH_OF = {
    "desaturation": {"desaturation"},
    "spo2_critical": {"desaturation"},
    "apnea_cluster": set(RESPIRATORY_EVENT_TYPES),
    "respiratory_event": set(RESPIRATORY_EVENT_TYPES),
    "bradycardia": {"bradycardia"},
    "tachycardia": {"tachycardia"},
    "asystole": {"asystole"},
}
TECHNICAL_CHANNELS = {
    "technical:spo2": {"SpO2"},
    "technical:cardiac": {"ECG", "HR"},
    "technical:respiratory": {"AF", "THX", "ABD"},
}
SLACK_S = 60.0


def actionable(alert: dict, truth_events: list) -> bool:
    """Whether the truth holds something of the alert's kind within ``SLACK_S`` of its evidence span."""
    start = float(alert["evidence"]["start"]) - START - SLACK_S
    end = float(alert["evidence"]["end"]) - START + SLACK_S
    kind = alert["type"]
    for event in truth_events:
        if not (event.onset_s < end and event.end_s > start):
            continue
        if event.type in TRUTH_OF.get(kind, ()):
            return True
        if (
            kind in TECHNICAL_CHANNELS
            and event.type in ("artifact", "signal_loss")
            and (event.channel is None or event.channel in TECHNICAL_CHANNELS[kind])
        ):
            return True
    return False


def run(source: str, hours: float, runtime) -> dict:
    recording = render(NightSpec(source, seed=5, artifacts=True))
    limit = START + hours * 3600.0
    chunks = [c for c in chunk_recording(recording, bed_id="bed-q") if c.t0 < limit]
    epocher, monitor = Epocher(), AlertMonitor()
    raised: list[dict] = []
    found = Counter()
    advisory_pairs = epochs = before = 0
    last_seen: dict[str, int] = {}
    for i, chunk in enumerate(chunks):
        out = epocher.add(chunk, i)
        if not out.epochs:
            continue
        for record in inference_records(runtime, out.epochs, 0.0).captions:
            record = decode_json(encode_json(record))
            epochs += 1
            for problem in contradictions(record):
                found[problem.split(",")[0][:70]] += 1
            advisory_pairs += len(record.get("advisories") or [])
            for kind in {str(a["type"]) for a in record.get("advisories") or []}:
                before += int(record["epoch"] - last_seen.get(kind, -10) >= 3)
                last_seen[kind] = int(record["epoch"])
            raised += [r["alert"] for r in monitor.caption(record) if r["event"] == "raised"]
    truth = list(recording.timeline.events)
    shown = [a for a in raised if a["priority"] != "advisory"]
    noisy = [a for a in shown if not actionable(a, truth)]
    return {
        "night": source,
        "epochs": epochs,
        "bed_hours": epochs * 30.0 / 3600.0,
        "contradictions": found,
        "shown": len(shown),
        "non_actionable": len(noisy),
        "by_type": Counter(a["type"] for a in noisy),
        "advisories": sum(a["priority"] == "advisory" for a in raised),
        "advisory_pairs": advisory_pairs,
        "advisories_before": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    args = parser.parse_args()
    runtime = load_runtime("sleeplm")
    rows, started = [], time.perf_counter()
    for source in COHORTS:
        row = run(source, args.hours, runtime)
        rows.append(row)
        print(row, flush=True)
    hours = sum(r["bed_hours"] for r in rows)
    print(f"\n{len(rows)} nights, {hours:.1f} bed-hours in {time.perf_counter() - started:.0f} s")
    print(
        f"caption contradictions: {sum(sum(r['contradictions'].values()) for r in rows)} "
        f"in {sum(r['epochs'] for r in rows)} caption records"
    )
    print(
        f"shown alerts {sum(r['shown'] for r in rows)}, non-actionable "
        f"{sum(r['non_actionable'] for r in rows)} = "
        f"{sum(r['non_actionable'] for r in rows) / hours:.2f} per bed-hour"
    )
    print(
        f"advisory alerts before grouping {sum(r['advisories_before'] for r in rows)} = "
        f"{sum(r['advisories_before'] for r in rows) / hours:.2f} per bed-hour"
    )
    print(
        f"advisory episodes (folded) {sum(r['advisories'] for r in rows)} = "
        f"{sum(r['advisories'] for r in rows) / hours:.2f} per bed-hour; model advisories per epoch and class "
        f"{sum(r['advisory_pairs'] for r in rows)} = "
        f"{sum(r['advisory_pairs'] for r in rows) / hours:.1f} per bed-hour"
    )


if __name__ == "__main__":
    main()
