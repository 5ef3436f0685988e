"""`evaluate(model_dir, manifest, out, ...)`: every metric of a trained model on one split, with pictures.

Writes into ``out``: ``metrics.json`` (a ``summary`` of headline numbers plus the full
classification / region / findings / clinical sections), ``roc.png``, ``overlays/*.png`` (heat maps
over the input with the radiologist boxes and the pointing-game peak: the best and the worst
pointing trials), ``pointing.jsonl`` (one line per trial), ``predictions.npz`` (probabilities,
labels, mask, study ids: what ``mmdx report`` draws its curves from) and ``findings.jsonl``
(reference and generated findings per study).
"""

from __future__ import annotations

import json
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from multimodal.data.dataset import StudyDataset, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.evaluation.caption import caption_metrics
from multimodal.evaluation.classification import classification_metrics, plot_roc
from multimodal.evaluation.region import heatmap_peak, pointing_game, pointing_game_ci, pointing_trials, save_overlay, tolerance_px, zone_f1
from multimodal.evaluation.trust import trust_metrics, trust_summary
from multimodal.models.mc_dropout import with_mc_dropout
from multimodal.models.modeling import MultimodalModel
from multimodal.models.tta import with_tta
from preprocessing.errors import ConfigError

SUMMARY_KEYS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


@torch.no_grad()
def predict(model: MultimodalModel, loader: DataLoader, device: torch.device, generate: bool) -> dict[str, Any]:
    """Run the model over a loader; returns stacked numpy arrays and per-study lists.

    Keys: ``probs`` (calibrated when the model is) / ``logits`` (raw) / ``uncertainty`` (spread of the
    model's samples, NaN without) / ``labels`` / ``label_mask`` ``[N, D]``, ``heatmaps``
    ``[N, D, h, w]`` (probabilities),
    ``zone_probs``/``zone_targets`` ``[N, D, Z]``, ``zone_mask`` ``[N, D]``, ``images`` ``[N, S, S]``
    (first view, normalised), ``study_ids``, ``boxes`` (model-input pixels) and ``generated`` (str or
    None per study), ``uncertainty_method`` (None, ``"ensemble"``, ``"tta"``, ``"mc_dropout"``, ...).
    """
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    keys = ("probs", "logits", "uncertainty", "labels", "label_mask", "heatmaps", "zone_probs", "zone_targets",
            "zone_mask", "images")
    parts: dict[str, list] = defaultdict(list)
    for batch, meta in tqdm(loader, desc="evaluate", dynamic_ncols=True):
        batch = {k: v.to(device) for k, v in batch.items()}
        inputs = {k: batch[k] for k in ("pixel_values", "view_mask", "input_ids", "attention_mask")}
        with amp:
            out = model(**inputs)
            texts = model.generate_findings(**inputs) if generate else [None] * len(meta["study_ids"])
        spread = (out.sample_probs.float().std(1) if out.sample_probs is not None
                  else torch.full_like(out.logits, torch.nan))
        values = {"probs": out.probs, "logits": out.logits, "uncertainty": spread, "labels": batch["labels"],
                  "label_mask": batch["label_mask"],
                  "heatmaps": out.heatmaps.sigmoid(), "zone_probs": out.zone_probs,
                  "zone_targets": batch["zone_targets"], "zone_mask": batch["zone_mask"],
                  "images": batch["pixel_values"][:, 0, 0]}
        for k in keys:
            parts[k].append(values[k].float().cpu().numpy() if values[k].is_floating_point() else values[k].cpu().numpy())
        parts["study_ids"] += meta["study_ids"]
        parts["boxes"] += meta["boxes"]
        parts["generated"] += texts
        parts["uncertainty_method"] = out.uncertainty_method
    return {k: (np.concatenate(v) if k in keys else v) for k, v in parts.items()}


def region_metrics(pred: dict[str, Any], observations: list[str], zones: list[str], image_size: int
                   ) -> tuple[dict, list]:
    """Pointing game over every (study, observation) with boxes, and zone-level F1.

    Returns ``(metrics, trials)``; a trial is ``(study index, observation index, boxes, peak, hit)``.
    The peak and the boxes are compared in the model's letterboxed square. Letterboxing is one
    uniform scale, so a tolerance of ``15 * S / 1024`` square pixels is exactly 15 px per 1024 px of
    the original image's longer side (7.5 px on NIH's 512-px PNGs, 15 px on its 1024-px originals).
    """
    tolerance = tolerance_px((image_size, image_size))
    trials = pointing_trials(pred["heatmaps"], pred["boxes"], observations, image_size)
    hits: dict[str, list[bool]] = {name: [] for name in observations}
    for _, d, _, _, hit in trials:
        hits[observations[d]].append(hit)
    result = {"pointing_game": pointing_game(hits), "tolerance_px_model_input": tolerance,
              "zones": zone_f1(pred["zone_probs"], pred["zone_targets"], pred["zone_mask"], zones)}
    return result, trials


def evaluate(model_dir: str | Path, manifest: str | Path, out: str | Path, split: str | None = "test",
             batch_size: int = 16, device: str | None = None, generate: bool = True, n_bootstrap: int = 500,
             overlays: int = 8, num_workers: int = 0, seed: int = 0, by: list[str] | None = None,
             tta: int = 1, mc_dropout: int = 1) -> dict[str, Any]:
    """Evaluate a saved model on the studies of ``manifest`` in ``split`` (all studies when None).

    Classification uses the thresholds stored in the model's config (tuned on validation during
    training). ``by``: manifest fields for the subgroup table (e.g. ``["sex", "age_band", "view"]``);
    ``tta``: test-time augmentation passes (1: none); ``mc_dropout``: MC-dropout passes (1: none;
    with both, each augmented pass runs them). Returns the dict written to ``out/metrics.json``;
    the ``calibration``, ``selective`` and ``subgroups`` sections come from
    :func:`~multimodal.evaluation.trust.trust_metrics`. ``result["summary"]`` holds
    ``macro_auroc`` (+ ``macro_auroc_ci``), ``micro_auroc``, ``macro_ap``, ``macro_f1``,
    ``pointing_game``, ``zone_f1``, BLEU-1..4, ``meteor``, ``rouge_l``, ``cider``, ``clinical_f1``
    and ``n_studies`` (None where not measurable, e.g. no boxes or no reference text).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = with_tta(with_mc_dropout(MultimodalModel.from_pretrained(model_dir, device=dev), mc_dropout), tta)
    config = model.config
    records = load_manifest(manifest, splits=split)
    if not records:
        raise ConfigError("--split", f"no study with split {split!r} in {manifest}")
    dataset = StudyDataset(records, config, tokenizer=model.tokenizer, train=False, grid_size=model.grid_size)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_studies, num_workers=num_workers)
    pred = predict(model, loader, dev, generate)

    observations = list(config.observations)
    thresholds = np.array([config.thresholds.get(o, 0.5) for o in observations])
    classification = classification_metrics(pred["probs"], pred["labels"], pred["label_mask"], observations,
                                            thresholds, n_bootstrap=n_bootstrap, seed=seed)
    classification["thresholds"] = dict(zip(observations, thresholds.tolist()))
    plot_roc(pred["probs"], pred["labels"], pred["label_mask"], observations, out / "roc.png")
    trust = trust_metrics(pred, records, observations, thresholds, out, by, n_bootstrap, seed)
    region, trials = region_metrics(pred, observations, list(config.zones), config.image_size)
    np.savez_compressed(out / "predictions.npz", probs=pred["probs"], labels=pred["labels"],
                        label_mask=pred["label_mask"], study_ids=np.array(pred["study_ids"]), observations=np.array(observations))
    trials = _by_pointing_error(trials)
    _write_overlays(pred, trials[:overlays - overlays // 2] + trials[len(trials) - overlays // 2:] if len(trials) > overlays
                    else trials, observations, out / "overlays", overlays)
    _write_pointing(pred, trials, observations, out / "pointing.jsonl")

    references = [r.findings for r in records]
    has_text = generate and any(r and r.strip() for r in references)
    findings = caption_metrics(references, pred["generated"]) if has_text else None
    clinical = _clinical(references, pred["generated"], observations) if has_text else None
    if generate:
        with open(out / "findings.jsonl", "w") as f:
            for sid, ref, gen in zip(pred["study_ids"], references, pred["generated"]):
                f.write(json.dumps({"study_id": sid, "reference": ref, "generated": gen}) + "\n")

    summary = {
        "n_studies": len(records),
        "macro_auroc": classification["macro"]["auroc"], "macro_auroc_ci": classification.get("ci", {}).get("macro_auroc"),
        "micro_auroc": classification["micro"]["auroc"], "macro_ap": classification["macro"]["ap"],
        "macro_f1": classification["macro"]["f1"],
        "pointing_game": region["pointing_game"]["mean"],
        "pointing_game_ci": pointing_game_ci(trials, observations, n_bootstrap, seed), "zone_f1": region["zones"]["micro_f1"],
        **{k: (findings or {}).get(k) for k in SUMMARY_KEYS},
        "clinical_f1": clinical["micro"]["f1"] if clinical else None, **trust_summary(trust),
    }
    result = {"summary": summary, "model": str(model_dir), "manifest": str(manifest), "split": split, "tta": tta,
              "mc_dropout": mc_dropout, "classification": classification, "region": region, "findings": findings,
              "clinical": clinical, **trust}
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _clinical(references: list[str], generated: list[str], observations: list[str]) -> dict | None:
    """Clinical efficacy over the model's observations; None when the labeler does not know them."""
    from multimodal.evaluation.clinical import clinical_efficacy

    try:
        return clinical_efficacy(references, generated, observations)
    except ValueError:
        return None


def _pointing_error(peak: tuple[float, float], rects: list) -> float:
    """Distance in square pixels from the peak to the nearest box (0 inside one)."""
    x, y = peak
    return min(float(np.hypot(max(bx - x, 0, x - bx - bw), max(by - y, 0, y - by - bh))) for bx, by, bw, bh in rects)


def _by_pointing_error(trials: list) -> list:
    """Pointing trials from the best (peak in a box) to the worst (peak farthest from every box)."""
    return sorted(trials, key=lambda t: _pointing_error(t[3], t[2]))


def _write_pointing(pred: dict[str, Any], trials: list, observations: list[str], path: Path) -> None:
    with open(path, "w") as f:
        for n, d, rects, peak, hit in trials:
            f.write(json.dumps({"study_id": pred["study_ids"][n], "observation": observations[d], "hit": hit,
                                "error_px": round(_pointing_error(peak, rects), 3),
                                "probability": round(float(pred["probs"][n, d]), 6),
                                "overlay": f"{_overlay_stem(pred['study_ids'][n], observations[d])}.png"}) + "\n")


def _overlay_stem(study_id: str, observation: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{study_id}_{observation}")


def _write_overlays(pred: dict[str, Any], trials: list, observations: list[str], folder: Path, limit: int) -> None:
    """PNG overlays for the first ``limit`` pointing-game trials (or top predictions when no boxes)."""
    if limit <= 0:
        return
    folder.mkdir(parents=True, exist_ok=True)
    if not trials:  # no boxes: show each study's most probable observation
        trials = [(n, int(pred["probs"][n].argmax()), [], heatmap_peak(pred["heatmaps"][n, int(pred["probs"][n].argmax())],
                   pred["images"].shape[-1]), None) for n in range(min(limit, len(pred["probs"])))]
    for n, d, rects, peak, hit in trials[:limit]:
        verdict = "" if hit is None else (" hit" if hit else " miss")
        title = f"{pred['study_ids'][n]}: {observations[d]} p={pred['probs'][n, d]:.2f}{verdict}"
        save_overlay(pred["images"][n], pred["heatmaps"][n, d], folder / f"{_overlay_stem(pred['study_ids'][n], observations[d])}.png",
                     title, rects, peak)
