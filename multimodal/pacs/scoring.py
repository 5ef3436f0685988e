"""What the PACS loops call to turn one received study into a DICOM Structured Report.

A ``StudyScorer`` wraps any callable ``datasets -> SR`` together with the algorithm name and version
that the SR carries, so that the DICOMweb loop can recognise SRs it already wrote (idempotency).
``load_scorer`` builds the default one from a saved model: ``Predictor`` + ``to_structured_report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset

from preprocessing.views import view_of

# DCM codes of the algorithm identification content items (TID 4019) in an SR.
ALGORITHM_NAME_CODE = "111001"
ALGORITHM_VERSION_CODE = "111003"


@dataclass(frozen=True)
class StudyScorer:
    """Scores one study (its CR/DX instances) and returns the SR to send back.

    ``score`` must return an SR whose content tree names the algorithm as
    ``algorithm_name`` / ``algorithm_version`` (TID 4019); ``sr_algorithm`` reads them back.
    """

    score: Callable[[list[Dataset]], Dataset]
    algorithm_name: str
    algorithm_version: str
    model_sha256: str = ""

    @property
    def model(self) -> dict[str, str]:
        """The model's identity for the audit trail: name, version, weights SHA-256."""
        return {"name": self.algorithm_name, "version": self.algorithm_version, "sha256": self.model_sha256}

    def __call__(self, datasets: list[Dataset]) -> Dataset:
        return self.score(datasets)

    def wrote(self, sr: Dataset) -> bool:
        """True when ``sr`` was written by this algorithm name and version."""
        return sr_algorithm(sr) == (self.algorithm_name, self.algorithm_version)


def load_scorer(model_dir: str | Path, device: str | None = None, precision: str | None = None) -> StudyScorer:
    """The default scorer: the saved model at ``model_dir`` through ``Predictor`` and its SR writer."""
    from multimodal.inference.predictor import Predictor
    from multimodal.inference.sr import to_structured_report

    predictor = Predictor.from_pretrained(model_dir, device=device, precision=precision)

    def score(datasets: list[Dataset]) -> Dataset:
        views = frontal_first(datasets)[: predictor.config.max_views]
        result = predictor.predict(views, study_id=str(views[0].StudyInstanceUID))
        return to_structured_report(result, views)

    return StudyScorer(score, predictor.model_name, predictor.model_version, predictor.model_info.get("sha256", ""))


def frontal_first(datasets: Sequence[Dataset]) -> list[Dataset]:
    """The study's views with frontal ones (PA/AP) first, then by InstanceNumber: the model computes
    its heat maps on the first view."""
    def key(ds: Dataset) -> tuple[int, int]:
        return view_of(ds).rank, int(ds.get("InstanceNumber") or 0)  # the project's one view rule

    return sorted(datasets, key=key)


def _content_items(items) -> Iterator[Dataset]:
    for item in items:
        yield item
        yield from _content_items(item.get("ContentSequence", []))


def sr_algorithm(sr: Dataset) -> tuple[str, str] | None:
    """``(algorithm name, algorithm version)`` named in an SR's content tree, or None."""
    found: dict[str, str] = {}
    for item in _content_items(sr.get("ContentSequence", [])):
        concept = item.get("ConceptNameCodeSequence")
        if concept and concept[0].CodeValue in (ALGORITHM_NAME_CODE, ALGORITHM_VERSION_CODE):
            found.setdefault(concept[0].CodeValue, str(item.get("TextValue", "")))
    if ALGORITHM_NAME_CODE not in found:
        return None
    return found[ALGORITHM_NAME_CODE], found.get(ALGORITHM_VERSION_CODE, "")
