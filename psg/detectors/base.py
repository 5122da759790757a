"""The result type every rule detector returns, and its conversion to timeline events for captions."""

from __future__ import annotations

from dataclasses import dataclass, field

from psg.timeline import Event


@dataclass(frozen=True)
class DetectedEvent:
    """One event found in the signals (never from truth annotations).

    ``values`` is the evidence a nurse or a caption needs (e.g. ``flow_drop_pct``, ``spo2_nadir``; text
    where the evidence is a word, e.g. a hypopnea's ``confirmed_by``);
    ``reason`` says why a ``signal_loss`` fired (flat, clipped, lead_off, missing).
    """

    type: str
    onset_s: float
    duration_s: float
    channel: str | None = None
    values: dict[str, float | str] = field(default_factory=dict)
    reason: str | None = None

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s

    def to_dict(self) -> dict[str, object]:
        """Flat JSON-ready dict: type, onset_s, duration_s, channel, (reason,) then the evidence values."""
        out: dict[str, object] = {
            "type": self.type,
            "onset_s": round(self.onset_s, 2),
            "duration_s": round(self.duration_s, 2),
            "channel": self.channel,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        out.update({k: v if isinstance(v, str) else round(float(v), 2) for k, v in self.values.items()})
        return out

    def to_event(self) -> Event:
        """As a ``psg.timeline.Event`` (the reason of a signal loss becomes its subtype)."""
        return Event(
            self.type, max(0.0, self.onset_s), max(0.0, self.duration_s), subtype=self.reason, channel=self.channel
        )


def to_events(detected: list[DetectedEvent]) -> list[Event]:
    """Detected events as timeline events, in time order (what captions and EDF+ annotations take)."""
    return sorted((d.to_event() for d in detected), key=lambda e: (e.onset_s, e.type))
