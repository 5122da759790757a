"""Nurse alert engine (broker-free core): ``AlertEngine`` turns epochs into prioritised, de-duplicated,
suppressed and escalating alerts. See ``engine`` for the rules and why they exist (alarm fatigue)."""

from psg.alerts.catalog import Alert, AlertConfig, AlertError, AlertEvent, Priority, State, Thresholds
from psg.alerts.engine import AlertEngine

__all__ = ["Alert", "AlertConfig", "AlertEngine", "AlertError", "AlertEvent", "Priority", "State", "Thresholds"]
