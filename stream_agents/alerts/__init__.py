"""Nurse alert engine (broker-free core): ``AlertEngine`` turns epochs into prioritised, de-duplicated,
suppressed and escalating alerts. See ``engine`` for the rules and why they exist (alarm fatigue)."""

from stream_agents.alerts.engine import AlertEngine
from stream_agents.alerts.model import Alert, AlertConfig, AlertError, AlertEvent, Priority, State, Thresholds

__all__ = ["Alert", "AlertConfig", "AlertEngine", "AlertError", "AlertEvent", "Priority", "State", "Thresholds"]
