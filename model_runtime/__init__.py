"""The SleepLM model side, one sub-package per job (the import contract in pyproject keeps them layered):

* ``model``: what the model is (configuration, encoders, caption decoder, text tower, tokenizer, prompts,
  zero-shot scoring, stage and lab heads, checkpoint files, the torch and onnxruntime backends);
* ``serving``: what runs it (the runtimes the live path calls, the SleepLM API, nights from files, watch rules);
* ``training``: what makes it (corpus, training, calibration, stage-head training, ONNX export);
* ``evaluation``: what measures it (the numbers of ``benchmarks/RESULTS.md``, ``bench model``, few-shot probes,
  building the watch rules' reference bank).

Arrows point down that list's reverse: evaluation -> training -> serving -> model.
"""

from model_runtime.serving.runtimes import EpochResult, InferenceRuntime, load_runtime

__all__ = ["EpochResult", "InferenceRuntime", "load_runtime"]
