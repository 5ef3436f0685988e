"""`robustness(model_dir, manifest, out, ...)`: a model under attack, corrupted films and changed text.

The split is decoded once (the clean model inputs stay in memory, about ``V x S² x 4`` bytes per
study) and every condition is scored from it:

* **adversarial**: FGSM and PGD (:mod:`.attacks`, white-box on the classification loss) at each eps
  of the [0, 1] intensity scale: macro AUROC and pointing game per method and eps;
* **corruptions**: each of :data:`preprocessing.corruptions.CORRUPTIONS` at each severity, applied to
  every present view of the model input on the [0, 1] scale (after decode and letterbox, before
  normalisation; geometric ones move the boxes too): macro AUROC, pointing game and ECE;
* **text**: the variants of :mod:`.text`: macro AUROC, its change per observation, how far
  probabilities move (mean and largest absolute change) and how many decisions flip at the model's
  thresholds.

Written into ``out``: ``robustness.json`` (everything), ``robustness.md`` (the tables) and
``plots/adversarial.png``, ``plots/corruptions.png`` (metric against eps / severity).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_calibration_error
from tqdm.auto import tqdm

from multimodal.data.dataset import StudyDataset, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.evaluation.classification import point_metrics, valid_mask
from multimodal.evaluation.evaluate import region_metrics
from multimodal.models.modeling import MultimodalModel
from multimodal.robustness.attacks import Attack, attack_batch
from multimodal.robustness.text import TEXT_VARIANTS, text_variant
from preprocessing.corruptions import CORRUPTIONS, SEVERITIES, affine, corrupt, map_boxes
from preprocessing.errors import ConfigError
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD
from preprocessing.text import normalize_text

DEFAULT_EPS = (0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
INPUT_KEYS = ("pixel_values", "view_mask", "input_ids", "attention_mask")
TARGET_KEYS = ("labels", "label_mask", "zone_targets", "zone_mask")
ECE_BINS = 15

Batch = tuple[dict[str, torch.Tensor], dict[str, list]]


class Scorer:
    """Runs the model over the split's clean batches with one change applied, and measures the result."""

    def __init__(self, model: MultimodalModel, batches: list[Batch], device: torch.device, bar: tqdm):
        self.model, self.batches, self.device, self.bar = model, batches, device, bar
        config = model.config
        self.observations, self.zones, self.size = list(config.observations), list(config.zones), config.image_size
        self.thresholds = np.array([config.thresholds[o] for o in self.observations])

    def predict(self, change: Callable[[dict, dict], tuple[dict, dict]] | None = None) -> dict[str, Any]:
        """Probabilities, heat maps, zones, targets and boxes over the split, after ``change(batch, meta)``."""
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
        parts: dict[str, list] = {k: [] for k in ("probs", "heatmaps", "zone_probs", *TARGET_KEYS)}
        boxes: list = []
        for batch, meta in self.batches:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            if change is not None:
                batch, meta = change(batch, meta)
            with torch.no_grad(), amp:
                out = self.model(**{k: batch[k] for k in INPUT_KEYS})
            values = {"probs": out.probs, "heatmaps": out.heatmaps.sigmoid(), "zone_probs": out.zone_probs,
                      **{k: batch[k] for k in TARGET_KEYS}}
            for k, v in values.items():
                parts[k].append(v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy())
            boxes += meta["boxes"]
            self.bar.update(1)
        return {**{k: np.concatenate(v) for k, v in parts.items()}, "boxes": boxes}

    def metrics(self, pred: dict[str, Any]) -> dict[str, float | None]:
        """Macro AUROC, pointing game and ECE (pooled over valid study-observation pairs, 15 bins)."""
        scores = point_metrics(pred["probs"], pred["labels"], pred["label_mask"], self.observations, self.thresholds)
        region, _ = region_metrics(pred, self.observations, self.zones, self.size)
        ok = valid_mask(pred["labels"], pred["label_mask"])
        ece = float(binary_calibration_error(torch.as_tensor(pred["probs"][ok]), torch.as_tensor(pred["labels"][ok]).long(),
                                             n_bins=ECE_BINS)) if ok.any() else None
        return {"macro_auroc": scores["macro"]["auroc"], "pointing_game": region["pointing_game"]["mean"], "ece": ece}


def _adversarial(attack: Attack, model: MultimodalModel) -> Callable[[dict, dict], tuple[dict, dict]]:
    def change(batch: dict, meta: dict) -> tuple[dict, dict]:
        inputs = {k: batch[k] for k in (*INPUT_KEYS, "labels", "label_mask")}
        with torch.enable_grad():
            pixels, _ = attack_batch(model, inputs, lambda out: out.losses["classification"], attack)
        return {**batch, "pixel_values": pixels}, meta
    return change


def _corruption(name: str, severity: int, seed: int) -> Callable[[dict, dict], tuple[dict, dict]]:
    """Corrupt every present view on the [0, 1] scale; move the boxes with a geometric corruption."""
    counter = iter(range(1 << 30))

    def change(batch: dict, meta: dict) -> tuple[dict, dict]:
        pixels = (batch["pixel_values"].float().cpu().numpy() * IMAGE_STD + IMAGE_MEAN).clip(0, 1)
        present = batch["view_mask"].cpu().numpy()
        for b, v in zip(*np.nonzero(present)):
            pixels[b, v, 0] = corrupt(pixels[b, v, 0], name, severity, np.random.default_rng([seed, next(counter)]))
        out = {**batch, "pixel_values": torch.from_numpy((pixels - IMAGE_MEAN) / IMAGE_STD).to(batch["pixel_values"])}
        if not CORRUPTIONS[name].geometric:
            return out, meta
        matrix = affine(name, severity, pixels.shape[-2:])
        boxes = [[{**box, "xywh": map_boxes(np.array([box["xywh"]]), matrix)[0].tolist()} for box in study]
                 for study in meta["boxes"]]
        return out, {**meta, "boxes": boxes}
    return change


def _text(tokens: list[dict[str, torch.Tensor]]) -> Callable[[dict, dict], tuple[dict, dict]]:
    batches = iter(tokens)

    def change(batch: dict, meta: dict) -> tuple[dict, dict]:
        new = next(batches)
        return {**batch, **{k: v.to(batch["input_ids"].device) for k, v in new.items()}}, meta
    return change


def _text_shift(scorer: Scorer, clean: dict[str, Any], pred: dict[str, Any]) -> dict[str, Any]:
    """How a text variant moved each observation: AUROC change, probability change, decision flips."""
    ok = valid_mask(clean["labels"], clean["label_mask"])
    base = point_metrics(clean["probs"], clean["labels"], clean["label_mask"], scorer.observations, scorer.thresholds)
    new = point_metrics(pred["probs"], pred["labels"], pred["label_mask"], scorer.observations, scorer.thresholds)
    delta = np.abs(pred["probs"] - clean["probs"])
    flips = (pred["probs"] >= scorer.thresholds) != (clean["probs"] >= scorer.thresholds)
    per_obs = {}
    for d, name in enumerate(scorer.observations):
        a, b = base["per_observation"].get(name, {}).get("auroc"), new["per_observation"].get(name, {}).get("auroc")
        per_obs[name] = {"auroc": b, "delta_auroc": (b - a) if a is not None and b is not None else None,
                         "mean_abs_dprob": float(delta[:, d].mean()), "max_abs_dprob": float(delta[:, d].max()),
                         "flips": int(flips[:, d].sum())}
    return {"macro_auroc": new["macro"]["auroc"],
            "delta_macro_auroc": new["macro"]["auroc"] - base["macro"]["auroc"]
            if new["macro"]["auroc"] is not None and base["macro"]["auroc"] is not None else None,
            "mean_abs_dprob": float(delta.mean()), "max_abs_dprob": float(delta.max()),
            "flips": int(flips.sum()), "flip_rate": float(flips.mean()), "decisions": int(flips.size),
            "flips_on_labelled": int((flips & ok).sum()), "per_observation": per_obs}


def robustness(model_dir: str | Path, manifest: str | Path, out: str | Path, split: str | None = "test",
               eps: Sequence[float] = DEFAULT_EPS, attacks: Sequence[str] = ("fgsm", "pgd"), pgd_steps: int = 10,
               corruptions: Sequence[str] | None = None, severities: Sequence[int] = SEVERITIES,
               text_variants: Sequence[str] = TEXT_VARIANTS, batch_size: int = 16, device: str | None = None,
               seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Measure a saved model on ``manifest``'s ``split`` under attacks, corruptions and text variants.

    ``eps`` are L-inf budgets on the [0, 1] intensity scale; ``corruptions`` None means all of
    :data:`~preprocessing.corruptions.CORRUPTIONS`; an empty list skips that part. Returns the dict
    written to ``out/robustness.json`` (``clean``, ``adversarial``, ``corruptions``, ``text``).
    """
    corruptions = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = [c for c in corruptions if c not in CORRUPTIONS] + [t for t in text_variants if t not in TEXT_VARIANTS]
    if unknown:
        raise ConfigError("corruptions", f"unknown {unknown}; known: {list(CORRUPTIONS) + list(TEXT_VARIANTS)}")
    attack_list = [Attack(method=m, eps=e, steps=pgd_steps) for m in attacks for e in eps]  # validates
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = MultimodalModel.from_pretrained(model_dir, device=dev)
    records = load_manifest(manifest, splits=split)
    if not records:
        raise ConfigError("--split", f"no study with split {split!r} in {manifest}")
    dataset = StudyDataset(records, model.config, tokenizer=model.tokenizer, train=False, grid_size=model.grid_size)
    batches = list(DataLoader(dataset, batch_size=batch_size, collate_fn=collate_studies))
    conditions = 1 + len(attack_list) + len(corruptions) * len(severities) + len(text_variants)
    bar = tqdm(total=conditions * len(batches), desc="robustness", dynamic_ncols=True, disable=not progress)
    scorer = Scorer(model, batches, dev, bar)

    clean_pred = scorer.predict()
    result: dict[str, Any] = {"model": str(model_dir), "manifest": str(manifest), "split": split,
                              "n_studies": len(records), "clean": scorer.metrics(clean_pred)}
    result["adversarial"] = [{"method": a.method, "eps": a.eps, "steps": a.n_steps,
                              **scorer.metrics(scorer.predict(_adversarial(a, model)))} for a in attack_list]
    result["corruptions"] = [{"corruption": name, "severity": s, "level": CORRUPTIONS[name].levels[s - 1],
                              "unit": CORRUPTIONS[name].unit,
                              **scorer.metrics(scorer.predict(_corruption(name, s, seed)))}
                             for name in corruptions for s in severities]
    texts = [r.text for r in records]
    positives = [[o for o in model.config.observations if r.labels.get(o) == 1] for r in records]
    result["text"] = {}
    for variant in text_variants:
        new_texts = text_variant(variant, texts, positives, seed)
        tokens = [model.tokenizer([normalize_text(t) for t in new_texts[i:i + batch_size]], padding=True,
                                  truncation=True, max_length=model.config.text_max_length, return_tensors="pt")
                  for i in range(0, len(new_texts), batch_size)]
        tokens = [{"input_ids": t["input_ids"], "attention_mask": t["attention_mask"]} for t in tokens]
        result["text"][variant] = _text_shift(scorer, clean_pred, scorer.predict(_text(tokens)))
    bar.close()
    (out / "robustness.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "robustness.md").write_text(markdown(result))
    plot(result, out / "plots")
    return result


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _steps(steps: int) -> str:
    return f" ({steps} steps)" if steps > 1 else ""


def markdown(result: dict[str, Any]) -> str:
    """The tables of a :func:`robustness` result in Markdown."""
    clean = result["clean"]
    lines = [f"# Robustness of {result['model']} ({result['n_studies']} studies, split {result['split']})", "",
             f"Clean: macro AUROC {_f(clean['macro_auroc'])}, pointing game {_f(clean['pointing_game'])}, "
             f"ECE {_f(clean['ece'])}.", ""]
    if result["adversarial"]:
        lines += ["## Adversarial (white-box, classification loss; eps on the [0, 1] scale)", "",
                  "| method | eps | eps x 255 | macro AUROC | pointing game |", "|---|---|---|---|---|"]
        lines += [f"| {r['method']}{_steps(r['steps'])} | {r['eps']:.4f} | {r['eps'] * 255:.2g} | "
                  f"{_f(r['macro_auroc'])} | {_f(r['pointing_game'])} |" for r in result["adversarial"]]
        lines.append("")
    if result["corruptions"]:
        lines += ["## Corruptions", "", "| corruption | severity | level | macro AUROC | pointing game | ECE |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['corruption']} | {r['severity']} | {r['level']} {r['unit']} | {_f(r['macro_auroc'])} | "
                  f"{_f(r['pointing_game'])} | {_f(r['ece'])} |" for r in result["corruptions"]]
        lines.append("")
    if result["text"]:
        lines += ["## Text reliance", "", "| text | macro AUROC | change | mean abs. change of p | largest | "
                  "decisions flipped |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {_f(r['macro_auroc'])} | {_f(r['delta_macro_auroc'], 3)} | {_f(r['mean_abs_dprob'])} | "
                  f"{_f(r['max_abs_dprob'])} | {r['flips']} of {r['decisions']} ({100 * r['flip_rate']:.1f} %) |"
                  for name, r in result["text"].items()]
        lines.append("")
    return "\n".join(lines)


def _nan(values: list[float | None]) -> list[float]:
    return [np.nan if v is None else v for v in values]


def plot(result: dict[str, Any], folder: Path) -> list[Path]:
    """``adversarial.png`` (metrics against eps) and ``corruptions.png`` (metrics against severity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    clean = result["clean"]
    if result["adversarial"]:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
        for ax, key in zip(axes, ("macro_auroc", "pointing_game")):
            for method in dict.fromkeys(r["method"] for r in result["adversarial"]):
                rows = [r for r in result["adversarial"] if r["method"] == method]
                ax.plot([0] + [r["eps"] * 255 for r in rows], _nan([clean[key]] + [r[key] for r in rows]), "o-",
                        label=method)
            ax.set(xlabel="eps (x 1/255 of the intensity range)", ylabel=key.replace("_", " "))
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "adversarial.png")
        plt.close(fig)
        written.append(folder / "adversarial.png")
    if result["corruptions"]:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=110)
        for ax, key in zip(axes, ("macro_auroc", "pointing_game", "ece")):
            for name in dict.fromkeys(r["corruption"] for r in result["corruptions"]):
                rows = [r for r in result["corruptions"] if r["corruption"] == name]
                ax.plot([0] + [r["severity"] for r in rows], _nan([clean[key]] + [r[key] for r in rows]), ".-",
                        label=name, lw=1)
            ax.set(xlabel="severity (0 = clean)", ylabel=key.replace("_", " "))
        axes[-1].legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(folder / "corruptions.png")
        plt.close(fig)
        written.append(folder / "corruptions.png")
    return written
