"""Cutting 30-s epochs from streamed chunks by sample time, and analysing each one (broker-free)."""
