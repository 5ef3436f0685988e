"""The Python API: :class:`Predictor` loads a saved model once and turns studies into :class:`StudyResult`.

Work is split in two so that batch scoring can run the first half in worker processes:

* :func:`~multimodal.inference.prepare.prepare_study` (CPU, picklable, no model, no torch):
  decode, letterbox, normalise → :class:`~multimodal.inference.prepare.PreparedStudy`;
* :meth:`Predictor.run_batch`: stack prepared studies, tokenise their text, one forward pass (and
  optionally findings generation), then turn probabilities, zone probabilities and heat maps into
  decisions, zones and peak coordinates in source pixels.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from pydicom import Dataset

from multimodal.inference.prepare import PreparedStudy, View, candidates_for, make_preparer, prepare_candidates
from multimodal.inference.results import ObservationResult, Peak, StudyResult, write_heatmaps
from multimodal.models.calibration import decide
from multimodal.models.mc_dropout import with_mc_dropout
from multimodal.models.tta import with_tta
from multimodal.models.model_card import weights_sha256
from preprocessing.errors import ConfigError, ImageReadError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None}  # int8: quantized Linears
# A zone is reported for a positive observation when its zone probability exceeds this; when
# none does, the single most likely zone is reported.
ZONE_THRESHOLD = 0.5

def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or when None: CUDA when present, else CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


class Predictor:
    """A saved model ready to score studies; build with :meth:`from_pretrained`.

    >>> predictor = Predictor.from_pretrained("runs/demo/train/best")
    >>> result = predictor.predict(["pa.dcm", "lat.dcm"], text="Cough.")
    >>> result.observations["Cardiomegaly"].probability
    """

    def __init__(self, model, device: torch.device, precision: str, model_dir: str | Path | None = None,
                 num_beams: int = 1, tta: int = 1, mc_dropout: int = 1):
        self.model = with_tta(with_mc_dropout(model, mc_dropout), tta).eval()
        self.config = model.config
        self.tokenizer = model.tokenizer
        self.device = device
        self.precision = precision
        self.num_beams = num_beams
        self.model_dir = str(model_dir) if model_dir is not None else None
        config_json = json.dumps(self.config.to_dict(), sort_keys=True)
        self.model_info = {"name": self.config.name, "version": self.config.version,
                           "config_hash": hashlib.sha256(config_json.encode()).hexdigest()[:16]}
        if model_dir is not None:
            self.model_info["sha256"] = weights_sha256(model_dir, model.weights_file)

    @property
    def model_name(self) -> str:
        return self.model_info["name"]

    @property
    def model_version(self) -> str:
        return self.model_info["version"]

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str | None = None, precision: str | None = None,
                        num_beams: int = 1, tta: int = 1, mc_dropout: int = 1) -> Predictor:
        """Load ``model_dir`` (a model or an ensemble directory) once. ``device``: None picks CUDA when
        present, else CPU. ``precision``: ``fp32`` / ``bf16`` / ``fp16`` (autocast), ``int8`` (CPU:
        dynamic int8 Linear layers, :mod:`multimodal.compression.quantize`); None means bf16 on CUDA,
        fp32 on CPU. ``num_beams``: beam width of findings generation (1 = greedy). ``tta``: test-time
        augmentation passes (1: none; see :mod:`multimodal.models.tta`). ``mc_dropout``: dropout passes
        (1: none; see :mod:`multimodal.models.mc_dropout`); with both, every augmented pass runs
        ``mc_dropout`` dropout passes."""
        from multimodal.models.modeling import MultimodalModel

        dev = resolve_device(device)
        precision = precision or ("bf16" if dev.type == "cuda" else "fp32")
        if precision not in PRECISIONS:
            raise ConfigError("precision", f"expected one of {list(PRECISIONS)}, got {precision!r}")
        model = MultimodalModel.from_pretrained(model_dir, device=dev)
        if precision == "int8":
            from multimodal.compression.quantize import quantize_int8

            if dev.type != "cpu":
                raise ConfigError("precision", f"int8 runs on the CPU only, not {dev}")
            model = quantize_int8(model)
        return cls(model, dev, precision, model_dir=model_dir, num_beams=num_beams, tta=tta, mc_dropout=mc_dropout)

    def preparer(self, keep_headers: bool = False) -> functools.partial:
        """:func:`prepare_study` for this model (see :func:`make_preparer`)."""
        return make_preparer(self.config, keep_headers)

    def prepare(self, study: View | Sequence[View], text: str | None = None, study_id: str | None = None,
                keep_headers: bool = True) -> PreparedStudy:
        """Decode and preprocess one study given as a path, a Dataset, an array, or a list of them.

        The views are chosen by the project's view rule (:mod:`preprocessing.views`: frontal, then
        lateral; non-image objects and duplicates never take a slot; a file that cannot be read is
        replaced by the next of its kind); raises ImageReadError when none can be used.
        """
        views = [study] if isinstance(study, (str, os.PathLike, Dataset, np.ndarray)) else list(study)
        if not views:
            raise ImageReadError(study_id, "the study has no images")
        return prepare_candidates(candidates_for(views), self.config.image_size, self.config.max_views, study_id,
                                  text, None, keep_headers)

    def predict(self, study: View | Sequence[View], text: str | None = None, study_id: str | None = None,
                generate: bool = True, heatmap_dir: str | Path | None = None) -> StudyResult:
        """Score one study (views chosen by the view rule; clinical ``text`` optional) → :class:`StudyResult`.

        With ``heatmap_dir``, writes the heat maps (``.npz``) and PNG overlays of positives there.
        """
        prepared = self.prepare(study, text=text, study_id=study_id)
        result = self.run_batch([prepared], generate=generate)[0]
        if heatmap_dir is not None:
            write_heatmaps(result, heatmap_dir, images=prepared.display_images())
        return result

    def predict_many(self, studies: Sequence[View | Sequence[View]], batch_size: int = 8,
                     texts: Sequence[str | None] | None = None, generate: bool = True) -> list[StudyResult]:
        """Score many studies in batches of ``batch_size``; results in input order."""
        texts = list(texts) if texts is not None else [None] * len(studies)
        if len(texts) != len(studies):
            raise ValueError(f"{len(texts)} texts for {len(studies)} studies")
        results: list[StudyResult] = []
        for start in range(0, len(studies), batch_size):
            prepared = [self.prepare(s, text=t) for s, t in
                        zip(studies[start:start + batch_size], texts[start:start + batch_size])]
            results.extend(self.run_batch(prepared, generate=generate))
        return results

    def batch_inputs(self, prepared: Sequence[PreparedStudy]) -> dict[str, torch.Tensor]:
        """Model keyword arguments for prepared studies: pixel_values ``[B, V, 1, S, S]`` (missing
        views zero), view_mask ``[B, V]``, input_ids / attention_mask ``[B, T]``."""
        views = max(p.pixel_values.shape[0] for p in prepared)
        size = self.config.image_size
        pixels = np.zeros((len(prepared), views, 1, size, size), dtype=np.float32)
        view_mask = np.zeros((len(prepared), views), dtype=bool)
        for i, p in enumerate(prepared):
            pixels[i, : len(p.pixel_values)] = p.pixel_values
            view_mask[i, : len(p.pixel_values)] = True
        tokens = self.tokenizer([p.text for p in prepared], padding=True, truncation=True,
                                max_length=self.config.text_max_length, return_tensors="pt")
        batch = {"pixel_values": torch.from_numpy(pixels), "view_mask": torch.from_numpy(view_mask),
                 "input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()

    @torch.inference_mode()
    def run_batch(self, prepared: Sequence[PreparedStudy], generate: bool = True,
                  inputs: dict[str, torch.Tensor] | None = None) -> list[StudyResult]:
        """One forward pass (and findings generation) over prepared studies → results in order.

        ``inputs``: :meth:`batch_inputs` of ``prepared`` when the caller built them already (batch
        scoring tokenises on its main thread and runs batches on others: the fast tokenizer is not
        thread-safe).
        """
        batch = inputs if inputs is not None else self.batch_inputs(prepared)
        t0 = time.perf_counter()
        with self._autocast():
            output = self.model(**batch)
        probs = output.probs.float().cpu().numpy()
        zone_probs = output.zone_probs.float().cpu().numpy()
        heatmaps = output.heatmaps.float().sigmoid().cpu().numpy()
        spread = output.sample_probs.float().std(1).cpu().numpy() if output.sample_probs is not None else None
        t1 = time.perf_counter()
        findings: list[str | None] = [None] * len(prepared)
        if generate:
            with self._autocast():
                findings = self.model.generate_findings(**batch, num_beams=self.num_beams)
        t2 = time.perf_counter()
        per_study = {"model": (t1 - t0) * 1e3 / len(prepared), "generate": (t2 - t1) * 1e3 / len(prepared)}
        return [self._result(p, probs[i], zone_probs[i], heatmaps[i], findings[i], per_study,
                             None if spread is None else spread[i], output.uncertainty_method)
                for i, p in enumerate(prepared)]

    def _result(self, prepared: PreparedStudy, probs: np.ndarray, zone_probs: np.ndarray, heatmaps: np.ndarray,
                findings: str | None, timings: dict[str, float], spread: np.ndarray | None = None,
                uncertainty_method: str | None = None) -> StudyResult:
        """Decisions, zones and peaks of one study. probs ``[D]``, zone_probs ``[D, Z]``, heatmaps
        ``[D, h, w]``, spread ``[D]`` (the uncertainty, from ``uncertainty_method``'s samples) or None."""
        zones = self.config.zones
        h, w = heatmaps.shape[1:]
        frontal = prepared.sources[0]
        observations = {}
        bands = (self.config.calibration or {}).get("indeterminate") or {}
        for d, name in enumerate(self.config.observations):
            threshold = self.config.thresholds[name]
            positive = bool(probs[d] >= threshold)
            where: list[str] = []
            if positive:
                where = [zones[z] for z in np.flatnonzero(zone_probs[d] > ZONE_THRESHOLD)]
                where = where or [zones[int(zone_probs[d].argmax())]]
            row, col = np.unravel_index(int(heatmaps[d].argmax()), (h, w))
            x, y = frontal.to_pixels((col + 0.5) / w, (row + 0.5) / h)
            observations[name] = ObservationResult(probability=float(probs[d]), threshold=threshold,
                                                   positive=positive, zones=where,
                                                   peak=Peak(x=round(x, 2), y=round(y, 2), view=0),
                                                   decision=decide(float(probs[d]), threshold, bands.get(name)),
                                                   uncertainty=None if spread is None else float(spread[d]))
        return StudyResult(study_id=prepared.study_id, observations=observations, findings=findings,
                           study_instance_uid=prepared.study_instance_uid, sources=prepared.sources,
                           model=dict(self.model_info), timings_ms={**prepared.timings_ms, **timings},
                           heatmaps=heatmaps.astype(np.float32),
                           failed=[{"path": e.path, "reason": e.reason} for e in prepared.failed],
                           skipped=[{"path": e.path, "reason": e.reason} for e in prepared.skipped],
                           uncertainty_method=uncertainty_method)
