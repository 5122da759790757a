"""Plumbing shared by the running services (bridge, agents, API, launcher): settings, topic names and
administration, the embedded Kafka-protocol broker, Prometheus metrics. Imports ``psg`` only."""
