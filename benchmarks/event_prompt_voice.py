"""What monitor-voice event prompts would do to the zero-shot event scores (issue 15; measured, not applied).

The checkpoint's event prompts ("The Obstructive Apnea event is documented from # to # seconds.", "No
events are documented in this epoch.") are prompt embeddings, never shown; the calibrated advisory
thresholds were fitted on the scores they give. This scores the validation corpus epochs with them and
with the same classes phrased by today's templates (``psg.captions.stage_event``, every phrasing, numbers
masked), and reports per class the best epoch-level F1 (``calibrate``'s method), how far each epoch's
score moves, and how many advisories the shipped thresholds would raise. Staging uses the stage prompts
only and is unaffected either way.

Usage::

    .venv/bin/python benchmarks/event_prompt_voice.py --cache sleeplm-data/corpus
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from model_runtime.model.prompts import EVENT_CLASSES, NO_EVENT
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.model.zero_shot import best_threshold
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.calibrate import event_truth
from model_runtime.training.dataset import load_split
from psg.captions.phrasing import Phraser
from psg.captions.stage_event import event_name, event_sentences


class _Nth(Phraser):
    """Always phrasing ``i`` (clamped): enumerates every template once."""

    def __init__(self, i: int) -> None:
        super().__init__("canonical")
        self.i = i

    def pick(self, options, **values):  # noqa: ANN001, ANN201 - Phraser.pick's signature
        return options[min(self.i, len(options) - 1)].format(**values)


def monitor_voice_prompts() -> dict[str, list[str]]:
    """Per event class, every template's sentence for it (plus the bare name), and the "no events" class."""
    out = {NO_EVENT: ["No events.", "No events in this epoch."]}
    for key, event in EVENT_CLASSES.items():
        sentences = {event_sentences([event], -5.0, _Nth(i))[0] for i in range(3)}
        out[key] = sorted(sentences) + [event_name(event).capitalize() + "."]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="training corpus cache (validation nights)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint (default: the shipped one)")
    args = parser.parse_args(argv)
    lm = SleepLM.load(args.checkpoint, backend="auto")
    embeddings, events = [], []
    for night in load_split(args.cache, "validation", progress=False):
        scored = night.stages >= 0
        embeddings.append(lm.embed(night.x[scored].astype(np.float32)))
        events.extend(e for e, keep in zip(night.events, scored, strict=True) if keep)
    emb = np.concatenate(embeddings)
    old = lm.event_scores(emb)
    prompts = monitor_voice_prompts()
    features = {k: embed_texts([mask_numbers(t) for t in v]) for k, v in prompts.items()}
    lm.event_classes = lm.project_text_features([features[k] for k in lm.event_labels])
    lm.no_event_class = lm.project_text_features([features[NO_EVENT]])[0]
    new = lm.event_scores(emb)
    thresholds = lm.checkpoint.calibration.get("event_thresholds", {})
    rows = {}
    for label in lm.event_labels:
        truth = event_truth(events, label)
        rows[label] = {
            "positives": int(truth.sum()),
            "best_f1_old_prompts": best_threshold(old[label], truth)[1],
            "best_f1_new_prompts": best_threshold(new[label], truth)[1],
            "score_shift_mean_abs": float(np.abs(new[label] - old[label]).mean()),
            "score_correlation": float(np.corrcoef(old[label], new[label])[0, 1]),
            "advisories_at_shipped_threshold_old_new": [int((s[label] >= thresholds[label]).sum()) for s in (old, new)]
            if label in thresholds
            else None,
        }
    print(json.dumps({"epochs": len(emb), "new_prompts": prompts, "classes": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
