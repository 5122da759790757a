"""Apnea typing when the belts and the flow run at different rates, as a real Nox A1 PSG records them.

Why: the real Nox A1 file we hold samples nasal pressure at 200 Hz and the belts at 25 Hz; the respiratory
detector once read the belts' effort at the flow's sample indices, and their analysis rates differ (25 / 6
against 200 / 50 Hz), so an apnea's type was judged on effort from another moment of the night. This
renders a simulated full-montage apnea night (``psg.synthetic``, AHI 40), detects its apneas as rendered
(32 Hz for flow and belts) and with the belts resampled to 25 Hz and the flow to 200 Hz, and scores the
types against the rendered events (``match_events`` per type).

    .venv/bin/python benchmarks/apnea_typing.py --json benchmarks/results/apnea_typing.json
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from real_rates import resampled
from real_signals import write_rows

from psg.detectors.agreement import match_events
from psg.detectors.respiratory import detect_respiratory_events
from psg.montage import ABD, AF, THX
from psg.recording import Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

APNEAS = ("obstructive_apnea", "central_apnea", "mixed_apnea")


def at_rates(recording: Recording, rates: dict[str, int]) -> Recording:
    """``recording`` with the channels of ``rates`` resampled to those rates (Hz)."""
    signals = dict(recording.signals)
    for label, fs in rates.items():
        signals[label] = resampled(signals[label], fs)
    return Recording(recording.record_id, signals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    timeline = synthetic_timeline(hours=args.hours, seed=args.seed, ahi=40.0)
    rendered = simulate(timeline, seed=args.seed)
    truth = [e for e in timeline.events if e.type in APNEAS]
    rows = []
    for name, recording in (
        ("flow and belts at the rendered rate", rendered),
        ("belts 25 Hz, flow 200 Hz (Nox A1)", at_rates(rendered, {THX: 25, ABD: 25, AF: 200})),
    ):
        found = detect_respiratory_events(recording)
        apneas = [e.to_event() for e in found if "apnea" in e.type]
        of = lambda events, kind: [e for e in events if e.type == kind]  # noqa: E731
        typed = {t: match_events(of(apneas, t), of(truth, t)).tp for t in APNEAS}
        row = {
            "recording": name,
            "apneas_rendered": len(truth),
            "rendered_types": dict(Counter(e.type for e in truth)),
            "apneas_found": match_events(apneas, truth).tp,
            "typed_right": sum(typed.values()),
            "found_types": dict(Counter(e.type for e in apneas)),
        }
        print(row)
        rows.append(row)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
