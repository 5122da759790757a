"""Making a checkpoint: corpus, training, calibration, the stage head and the ONNX export (``train`` extra)."""
