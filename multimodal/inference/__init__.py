"""Inference: the Python API (:class:`Predictor`), DICOM Structured Reports and batch scoring.

    from multimodal.inference import Predictor, to_structured_report, score
"""

from multimodal.inference.predictor import Predictor, PreparedStudy, prepare_study
from multimodal.inference.results import ObservationResult, Peak, SourceImage, StudyResult
from multimodal.inference.scoring import merge_parts, score
from multimodal.inference.sources import StudyInput, discover_studies
from multimodal.inference.sr import to_structured_report

__all__ = ["ObservationResult", "Peak", "Predictor", "PreparedStudy", "SourceImage", "StudyInput", "StudyResult",
           "discover_studies", "merge_parts", "prepare_study", "score", "to_structured_report"]
