"""The model card written next to every saved model (``README.md``, Hugging Face model-card format).

A card is YAML metadata between ``---`` lines, then Markdown sections: intended and out-of-scope
use, training data (sources, studies and label counts per split, dates, de-identification status,
licences), the training recipe, validation metrics per observation with bootstrap 95% intervals,
limitations, and that the model is not a medical device. ``MultimodalModel.save_pretrained`` writes
it from a :class:`ModelCard` the trainer fills with what it knows; without one the card says that
nothing about training was recorded. :func:`weights_sha256` is the identity that results, SRs and
the audit trail carry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preprocessing.errors import MmdxError

CARD_NAME = "README.md"
NOT_RECORDED = "not recorded (fill in before release)"


def weights_sha256(directory: str | Path, weights_name: str = "model.safetensors") -> str:
    """SHA-256 (hex) of a saved model's weights file."""
    digest = hashlib.sha256()
    with open(Path(directory) / weights_name, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelCard:
    """What a card says beyond the model's config; every field optional.

    ``data``: ``{"sources": [...], "licences": [...], "deidentification": str, "dates": {...},
    "splits": {split: {"studies": n, "labels": {observation: {"positive", "negative", "uncertain"}}}}}``
    (:func:`data_summary`). ``recipe``: the resolved training config. ``metrics``: the output of
    ``multimodal.evaluation.classification.classification_metrics`` on the validation split, with
    ``split`` and ``step`` naming where it comes from. ``figures``: file names (relative to the
    model directory) of calibration or subgroup plots, when they exist.
    """

    data: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)

    def render(self, config: Any, sha256: str) -> str:
        """The README.md text for a model with ``config`` (a MultimodalConfig) and weights hash."""
        observations = list(config.observations)
        meta = {"library_name": "mmdx", "pipeline_tag": "image-classification",
                "tags": ["medical-imaging", "chest-x-ray", "multimodal", "not-a-medical-device"],
                "license": "other", "license_name": "; ".join(self.data.get("licences") or []) or NOT_RECORDED,
                "model_name": config.name, "model_version": config.version, "weights_sha256": sha256}
        if self.metrics:
            meta["model-index"] = [{"name": config.name, "results": [{
                "task": {"type": "image-classification"},
                "dataset": {"name": ", ".join(self.data.get("sources", [])) or "unknown",
                            "type": "chest-radiographs", "split": self.metrics.get("split", "validation")},
                "metrics": [{"type": "roc_auc", "name": f"AUROC {name}", "value": round(m["auroc"], 4)}
                            for name, m in self.metrics["per_observation"].items() if m.get("auroc") is not None]}]}]
        parts = ["---", _yaml(meta).rstrip(), "---", "",
                 f"# {config.name} {config.version}", "",
                 f"Multimodal chest-radiograph model (image encoder + report-text encoder + cross-attention "
                 f"fusion) trained with mmdx. Weights SHA-256: `{sha256}`. Every result line and DICOM SR "
                 f"it writes names this model, version and hash.", "",
                 "## Intended use", "",
                 "Research and decision support prototypes on adult frontal/lateral chest radiographs (CR, DX): "
                 f"probabilities and present/absent decisions for {', '.join(observations)}, heat maps and lung "
                 "zones, and draft findings text, each to be reviewed by a qualified reader.", "",
                 "## Out-of-scope use", "",
                 "- Any diagnosis, triage or treatment decision without a qualified reader's review.",
                 "- Other modalities, body parts, paediatric patients, or populations and scanners unlike the "
                 "training data below.",
                 "- Images with burned-in annotations, or data that has not passed the site's privacy review.", "",
                 "## Training data", "", *self._data_section(), "",
                 "## Training recipe", "", *self._recipe_section(config), "",
                 "## Metrics", "", *self._metrics_section(), "",
                 "## Limitations", "",
                 "- Labels mined from report text are noisy (uncertain mentions are handled by the configured "
                 "policy), so metrics against them understate or overstate agreement with radiologists.",
                 "- Validation metrics come from the same sources as training; expect lower performance on other "
                 "sites, scanners and populations until validated locally.",
                 "- Heat maps show where the model looked, not proof of a finding; generated text can state "
                 "findings that are not there.", "",
                 "## Not a medical device", "",
                 "This model has no regulatory clearance or approval (no CE mark, no FDA clearance). It must not be "
                 "used for clinical decisions.", ""]
        return "\n".join(parts)

    def _data_section(self) -> list[str]:
        d = self.data
        if not d:
            return [f"Training data: {NOT_RECORDED}."]
        lines = [f"- Sources: {', '.join(d.get('sources') or [NOT_RECORDED])}",
                 f"- Licences: {', '.join(d.get('licences') or [NOT_RECORDED])}",
                 f"- De-identification: {d.get('deidentification') or NOT_RECORDED}",
                 f"- Dates: {json.dumps(d.get('dates') or {}) if d.get('dates') else NOT_RECORDED}", ""]
        splits = d.get("splits", {})
        names = sorted({obs for s in splits.values() for obs in s.get("labels", {})})
        lines += ["| observation | " + " | ".join(f"{s} pos / neg / unc" for s in splits) + " |",
                  "|---|" + "---|" * len(splits)]
        lines += ["| studies | " + " | ".join(str(s.get("studies", 0)) for s in splits.values()) + " |"]
        for obs in names:
            cells = []
            for s in splits.values():
                c = s.get("labels", {}).get(obs, {})
                cells.append(f"{c.get('positive', 0)} / {c.get('negative', 0)} / {c.get('uncertain', 0)}")
            lines.append(f"| {obs} | " + " | ".join(cells) + " |")
        return lines

    def _recipe_section(self, config: Any) -> list[str]:
        model = {k: getattr(config, k) for k in ("image_encoder", "image_size", "text_encoder", "max_views")
                 if hasattr(config, k)}
        lines = [f"- Model: `{json.dumps(model, default=str)}`"]
        if self.recipe:
            lines.append("- Training config (resolved):")
            lines += ["", "```json", json.dumps(self.recipe, indent=1, sort_keys=True, default=str), "```"]
        else:
            lines.append(f"- Training config: {NOT_RECORDED}")
        return lines

    def _metrics_section(self) -> list[str]:
        m = self.metrics
        if not m:
            return [f"Metrics: {NOT_RECORDED}."]

        def cell(value, ci) -> str:
            if value is None:
                return "n/a"
            return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else f"{value:.3f}"

        lines = [f"Split `{m.get('split', 'validation')}` at step {m.get('step', '?')}, thresholds tuned on it; "
                 f"95% intervals from {m.get('n_bootstrap', '?')} bootstrap resamples of the studies.", "",
                 "| observation | n | positives | AUROC [95% CI] | AP [95% CI] | F1 [95% CI] |",
                 "|---|---|---|---|---|---|"]
        for name, o in m["per_observation"].items():
            ci = o.get("ci") or {}
            lines.append(f"| {name} | {o.get('n', '')} | {o.get('positives', '')} "
                         f"| {cell(o.get('auroc'), ci.get('auroc'))} | {cell(o.get('ap'), ci.get('ap'))} "
                         f"| {cell(o.get('f1'), ci.get('f1'))} |")
        macro = m.get("macro", {})
        lines.append(f"| macro | | | {cell(macro.get('auroc'), m.get('ci', {}).get('macro_auroc'))} | "
                     f"{cell(macro.get('ap'), m.get('ci', {}).get('macro_ap'))} | "
                     f"{cell(macro.get('f1'), m.get('ci', {}).get('macro_f1'))} |")
        if self.figures:
            lines += ["", "Calibration and subgroup figures: " + ", ".join(f"[{f}]({f})" for f in self.figures)]
        else:
            lines += ["", "Calibration and subgroup figures: none were produced for this model."]
        return lines


def data_summary(records_by_split: dict[str, list], sources: list[str]) -> dict[str, Any]:
    """The card's ``data`` from manifest records (``StudyRecord``) per split.

    Licences, de-identification and source names come from the records' ``meta`` keys
    ``license``, ``deidentified`` and ``source`` when the manifest has them; synthetic phantom
    studies (``meta.synthetic``) are named as such.
    """
    splits, licences, names, deid, dates = {}, set(), set(), set(), []
    for split, records in records_by_split.items():
        labels: dict[str, dict[str, int]] = {}
        for r in records:
            for obs, value in r.labels.items():
                if value is not None:
                    key = {1: "positive", 0: "negative", -1: "uncertain"}[value]
                    labels.setdefault(obs, {"positive": 0, "negative": 0, "uncertain": 0})[key] += 1
            meta = r.meta or {}
            licences.update([str(meta["license"])] if meta.get("license") else [])
            names.update([str(meta["source"])] if meta.get("source") else [])
            if meta.get("synthetic"):
                names.add("synthetic phantom (mmdx phantom)")
                deid.add("synthetic, no patient data")
                licences.add("Apache-2.0 (generated)")
            elif "deidentified" in meta:
                deid.add("de-identified" if meta["deidentified"] else "NOT de-identified")
            if meta.get("study_date"):
                dates.append(str(meta["study_date"]))
        splits[split] = {"studies": len(records), "labels": labels}
    return {"sources": sorted(names) + sources, "licences": sorted(licences),
            "deidentification": ", ".join(sorted(deid)),
            "dates": {"first_study": min(dates), "last_study": max(dates)} if dates else {}, "splits": splits}


def read_card(directory: str | Path) -> str:
    """The README.md of a model directory (``mmdx info --model DIR``)."""
    path = Path(directory) / CARD_NAME
    if not path.is_file():
        raise MmdxError(f"{path}: no model card (models saved before cards existed have none; save it again)")
    return path.read_text()


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
