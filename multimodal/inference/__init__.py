"""Inference: the Python API (:class:`Predictor`), DICOM Structured Reports and batch scoring.

    from multimodal.inference import Predictor, to_structured_report, score

Names are imported on first use, so that a decode worker process, which needs only
:mod:`multimodal.inference.prepare`, does not import torch, MONAI or highdicom.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "multimodal.inference.predictor",
    "PreparedStudy": "multimodal.inference.prepare",
    "prepare_study": "multimodal.inference.prepare",
    "ObservationResult": "multimodal.inference.results",
    "Peak": "multimodal.inference.results",
    "SourceImage": "multimodal.inference.results",
    "StudyResult": "multimodal.inference.results",
    "merge_parts": "multimodal.inference.scoring",
    "score": "multimodal.inference.scoring",
    "StudyInput": "multimodal.inference.sources",
    "discover_studies": "multimodal.inference.sources",
    "to_structured_report": "multimodal.inference.sr",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'multimodal.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
