"""The cardio-respiratory half of the simulator: ECG, HR, THX, ABD, AF and SpO2 from a night plan.

Order matters only through shared physiology: breathing is rendered first because the heart rate
(respiratory sinus arrhythmia) and the ECG (baseline wander, QRS amplitude) follow its phase. Each
part draws from its own named random stream, so the channels stay reproducible one by one.
"""

from __future__ import annotations

from psg.simulate.cardiac import beat_times, render_ecg, render_monitor_hr
from psg.simulate.oximetry import render_spo2
from psg.simulate.plan import NightPlan, Rendered
from psg.simulate.respiration import FS as RESP_FS
from psg.simulate.respiration import render_respiration


def render_cardiorespiratory(plan: NightPlan) -> Rendered:
    """Render the cardio-respiratory channels; the events are the desaturations drawn."""
    breathing = render_respiration(plan)
    beats = beat_times(plan, breathing.phase, RESP_FS)
    ecg = render_ecg(plan, beats, breathing.phase, RESP_FS)
    hr = render_monitor_hr(plan, beats)
    spo2, desaturations = render_spo2(plan)
    signals = {ecg.label: ecg, **breathing.signals, spo2.label: spo2, hr.label: hr}
    return Rendered(signals=signals, events=desaturations, beat_times_s=beats)
