"""Running the model: the live runtimes, the Python API, nights from files and watch rules (no training code)."""
