"""The multimodal model: config, encoders, fusion, heads and the assembled network."""

from .configuration import MultimodalConfig
from .decoder_vocab import build_decoder_vocab
from .encoders import IMAGE_ENCODERS, build_image_encoder
from .modeling import MultimodalModel, MultimodalOutput

__all__ = ["IMAGE_ENCODERS", "MultimodalConfig", "MultimodalModel", "MultimodalOutput", "build_decoder_vocab",
           "build_image_encoder"]
