"""YASA 0.8.1's sleep-staging classifiers as LightGBM text models, loaded by ``psg.features.yasa_prior``.

``clf_<channel set>.txt.gz`` and ``manifest.json`` (class order, source file and its SHA-256) are built from the
``yasa`` package by ``python -m psg.features.yasa_classifiers.build`` (see there); YASA is BSD-3-Clause,
Copyright (c) 2018-2025 Raphael Vallat.
"""
