"""Property-based fuzzing of the live path's inputs: decoders, validators, the epocher and the API."""
