"""Signal quality, one home: per-epoch channel flags (``epoch_flags``, the live path) and technical
``signal_loss`` events over a recording (``signal_loss``, the offline detectors)."""
