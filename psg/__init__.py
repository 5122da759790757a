"""The PSG domain kernel: montage, timelines, recordings, formats, DSP, features, detectors, simulator, captions.

Every other package of SleepLM Monitor imports ``psg``; ``psg`` imports none of them.
"""
