"""Is the SYNTHETIC phantom learnable by a small model on a CPU in minutes, and is its text uninformative?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/phantom_learnability.py [--studies 400] [--epochs 12]

Writes phantom studies (128 px, as `make demo`), preloads them once through StudyDataset without
augmentation (a probe of the data, not of the trainer), trains the `configs/phantom-tiny.yaml`
model with plain AdamW, and prints test-split macro AUROC, pointing game (heat-map argmax inside the
box ± 15 px of the 128-px image) and BLEU-4 of greedy findings, plus the AUROC of a text-only
baseline (bag-of-words logistic regression on the indication). JSON in
``benchmarks/results/phantom_learnability.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from multimodal.data.dataset import StudyDataset, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.data.phantom import write_phantom_dataset
from multimodal.evaluation.caption import caption_metrics
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel

ROOT = Path(__file__).resolve().parents[1]
PHANTOM_SIZE, TOLERANCE_PX = 128, 15


def _batches(dataset: StudyDataset, batch_size: int) -> list[tuple[dict, dict]]:
    items = [dataset[i] for i in range(len(dataset))]
    return [collate_studies(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]


def _macro_auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([roc_auc_score(labels[:, d], probs[:, d]) for d in range(labels.shape[1])]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "phantom_learnability.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    recipe = yaml.safe_load((ROOT / "configs" / "phantom-tiny.yaml").read_text())
    config = MultimodalConfig(**recipe["model"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = write_phantom_dataset(tmp, studies=args.studies, seed=0, size=PHANTOM_SIZE)
        t_generate = time.perf_counter() - t0
        model = MultimodalModel.from_config(config)
        splits = {s: load_manifest(manifest, splits=s) for s in ("train", "test")}
        data = {s: _batches(StudyDataset(r, config, model.tokenizer), recipe["data"]["batch_size"])
                for s, r in splits.items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe["optim"]["lr"],
                                  weight_decay=recipe["optim"]["weight_decay"])
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        losses = []
        for batch, _ in data["train"]:
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    t_train = time.perf_counter() - t0

    model.eval()
    probs, labels, hits, references, generated = [], [], [], [], []
    scale = config.image_size / PHANTOM_SIZE
    with torch.no_grad():
        for batch, meta in data["test"]:
            out = model(**{k: batch[k] for k in ("pixel_values", "view_mask", "input_ids", "attention_mask")})
            probs.append(out.probs.numpy())
            labels.append(batch["labels"].numpy())
            cell = config.image_size / out.heatmaps.shape[-1]
            for heat, boxes in zip(out.heatmaps, meta["boxes"]):
                for box in boxes:
                    d = config.observations.index(box["label"])
                    row, col = divmod(int(heat[d].argmax()), heat.shape[-1])
                    x, y = (col + 0.5) * cell, (row + 0.5) * cell
                    bx, by, bw, bh = box["xywh"]
                    tol = TOLERANCE_PX * scale
                    hits.append(bx - tol <= x <= bx + bw + tol and by - tol <= y <= by + bh + tol)
            generated += model.generate_findings(batch["pixel_values"], batch["view_mask"], batch["input_ids"],
                                                 batch["attention_mask"])
    references = [r.findings for r in splits["test"]]
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    bleu4 = caption_metrics(references, generated, meteor=False)["bleu4"]

    words = CountVectorizer().fit([r.text for r in splits["train"]])
    text_train, text_test = words.transform([r.text for r in splits["train"]]), words.transform([r.text for r in splits["test"]])
    train_labels = np.array([[r.labels[o] for o in config.observations] for r in splits["train"]])
    text_probs = np.stack([LogisticRegression(max_iter=1000).fit(text_train, train_labels[:, d]).predict_proba(text_test)[:, 1]
                           for d in range(len(config.observations))], axis=1)

    result = {"studies": args.studies, "epochs": args.epochs, "generate_s": t_generate, "train_s": t_train,
              "test_studies": len(splits["test"]), "macro_auroc": _macro_auroc(probs, labels),
              "pointing_game": float(np.mean(hits)), "bleu4": bleu4,
              "text_only_macro_auroc": _macro_auroc(text_probs, labels), "example": generated[0],
              "auroc": {o: float(roc_auc_score(labels[:, d], probs[:, d])) for d, o in enumerate(config.observations)}}
    print(f"\n{'metric':<26}{'value':>10}")
    for name, value in result["auroc"].items():
        print(f"{'AUROC ' + name:<26}{value:>10.3f}")
    for key in ("macro_auroc", "pointing_game", "bleu4", "text_only_macro_auroc", "generate_s", "train_s"):
        print(f"{key:<26}{result[key]:>10.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
