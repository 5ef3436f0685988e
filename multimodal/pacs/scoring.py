"""What the PACS loops call to turn one received study into a DICOM Structured Report.

A ``StudyScorer`` wraps any callable ``datasets -> SR`` (or ``-> ScoredStudy``, the SR with the
accounting of the study's instances) together with the algorithm name and version that the SR
carries, so that the DICOMweb loop can recognise SRs it already wrote (idempotency).
``load_scorer`` builds the default one from a saved model: ``Predictor`` (which chooses the views
by the project's view rule, :mod:`preprocessing.views`) + ``to_structured_report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom import Dataset

if TYPE_CHECKING:
    from multimodal.inference.results import StudyResult

# DCM codes of the algorithm identification content items (TID 4019) in an SR.
ALGORITHM_NAME_CODE = "111001"
ALGORITHM_VERSION_CODE = "111003"


@dataclass(frozen=True)
class ScoredStudy:
    """A scorer's answer for one study: the SR and, when known, the result whose ``sources`` are the
    instances used (with their views) and whose ``failed`` / ``skipped`` list the others with reasons."""

    sr: Dataset
    result: StudyResult | None = None

    def accounting(self, datasets: Sequence[Dataset]) -> dict[str, dict[str, str]]:
        """Per SOPInstanceUID of ``datasets`` (the study as given to the scorer): ``{"status": "used",
        "view"}`` or ``{"status": "skipped" | "failed", "reason"}``. Without a result, all count as used."""
        from multimodal.inference.prepare import dataset_name

        names = {str(ds.get("SOPInstanceUID", k)): dataset_name(ds, k) for k, ds in enumerate(datasets)}
        if self.result is None:
            return {uid: {"status": "used", "view": "unknown"} for uid in names}
        used = {s.sop_instance_uid: {"status": "used", "view": s.view or "unknown"} for s in self.result.sources}
        others = {e["path"]: {"status": "failed", "reason": e["reason"]} for e in self.result.failed}
        others.update((e["path"], {"status": "skipped", "reason": e["reason"]}) for e in self.result.skipped)
        return {uid: used.get(uid) or others.get(name, {"status": "skipped", "reason": "not used by the scorer"})
                for uid, name in names.items()}


@dataclass(frozen=True)
class StudyScorer:
    """Scores one study (its CR/DX instances) and returns the SR to send back, with its accounting.

    ``score`` returns an SR, or a :class:`ScoredStudy`; the SR must name the algorithm as
    ``algorithm_name`` / ``algorithm_version`` (TID 4019); ``sr_algorithm`` reads them back.
    """

    score: Callable[[list[Dataset]], Dataset | ScoredStudy]
    algorithm_name: str
    algorithm_version: str
    model_sha256: str = ""

    @property
    def model(self) -> dict[str, str]:
        """The model's identity for the audit trail: name, version, weights SHA-256."""
        return {"name": self.algorithm_name, "version": self.algorithm_version, "sha256": self.model_sha256}

    def __call__(self, datasets: list[Dataset]) -> ScoredStudy:
        return scored_study(self.score(datasets))

    def wrote(self, sr: Dataset) -> bool:
        """True when ``sr`` was written by this algorithm name and version."""
        return sr_algorithm(sr) == (self.algorithm_name, self.algorithm_version)


def scored_study(answer: Dataset | ScoredStudy) -> ScoredStudy:
    """A scorer's answer as a ScoredStudy (a bare SR carries no accounting)."""
    return answer if isinstance(answer, ScoredStudy) else ScoredStudy(answer)


def load_scorer(model_dir: str | Path, device: str | None = None, precision: str | None = None) -> StudyScorer:
    """The default scorer: the saved model at ``model_dir`` through ``Predictor`` and its SR writer."""
    from multimodal.inference.predictor import Predictor
    from multimodal.inference.prepare import sr_header
    from multimodal.inference.sr import to_structured_report

    predictor = Predictor.from_pretrained(model_dir, device=device, precision=precision)

    def score(datasets: list[Dataset]) -> ScoredStudy:
        result = predictor.predict(datasets, study_id=str(datasets[0].StudyInstanceUID))
        by_uid = {str(ds.get("SOPInstanceUID", "")): ds for ds in datasets}
        used = [sr_header(by_uid[s.sop_instance_uid]) for s in result.sources]  # in slot order, frontal first
        return ScoredStudy(to_structured_report(result, used), result)

    return StudyScorer(score, predictor.model_name, predictor.model_version, predictor.model_info.get("sha256", ""))


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
