"""The SleepLM model side: the batched inference runtime behind the live path (``runtime``) and, with
the model issue, the model, text tower, corpus, training, evaluation and export."""

from model_runtime.serving.runtimes import EpochResult, InferenceRuntime, load_runtime

__all__ = ["EpochResult", "InferenceRuntime", "load_runtime"]
