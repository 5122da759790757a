"""Device bridges: bedside PSG devices (real LSL amplifiers, simulated beds, EDF replay) -> ``psg.samples``.

``simulated`` (beds as LSL outlets, ``run_beds``), ``channel_map`` (device label -> montage channel),
``bridge_config`` (which real device streams belong to which bed), ``bridge`` (LSL -> Kafka,
``run_bridge``), ``producer`` and ``spool`` (ordered, acknowledged delivery that survives broker
outages), ``lsl_config`` (keep LSL discovery on this machine unless configured otherwise).
Modules import ``pylsl`` lazily, after ``lsl_config.configure_lsl()``.
"""
