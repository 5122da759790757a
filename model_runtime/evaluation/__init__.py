"""Measuring the model: held-out evaluation, speed, few-shot probes and building the reference bank."""
