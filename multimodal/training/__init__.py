"""Training: the typed config (:class:`TrainConfig`) and :func:`train` on Hugging Face Accelerate."""

from multimodal.training.config import TrainConfig, load_train_config
from multimodal.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "load_train_config", "train"]
