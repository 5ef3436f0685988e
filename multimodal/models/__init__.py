"""The multimodal model: config, encoders, fusion, heads and the assembled network."""

from .configuration import MultimodalConfig
from .encoders import IMAGE_ENCODERS, build_image_encoder
from .modeling import MultimodalModel, MultimodalOutput

__all__ = ["IMAGE_ENCODERS", "MultimodalConfig", "MultimodalModel", "MultimodalOutput", "build_image_encoder"]
