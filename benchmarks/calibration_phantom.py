"""Does calibration repair a deliberately over-confident model? Measured on the SYNTHETIC phantom.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration_phantom.py [--studies 200] [--out DIR]

A random tiny model whose classification head is scaled x40 (probabilities near 0 or 1 that mean
nothing) is calibrated on the phantom's train split with each method (`mmdx calibrate`'s API) and
evaluated on the held-out test split (`mmdx evaluate`'s API). Prints, and writes to
``benchmarks/results/calibration_phantom.json``, macro AUROC, ECE (15 equal-width bins), adaptive
ECE, Brier, NLL and AURC per method.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from multimodal.calibration.calibrate import calibrate
from multimodal.data.phantom import write_phantom_dataset
from multimodal.evaluation.evaluate import evaluate
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel

KEYS = ("n_studies", "macro_auroc", "macro_ece", "macro_ece_adaptive", "macro_brier", "macro_nll", "aurc")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=int, default=200)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="calibration-phantom-"))
    manifest = write_phantom_dataset(root / "phantom", studies=a.studies, seed=7, size=64)
    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_size=32, patch_size=8, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, max_views=1, text_layers=1, text_max_length=16,
                              fusion_layers=1, fusion_heads=2, fusion_hidden=32, decoder_layers=1,
                              decoder_max_length=8)
    model = MultimodalModel.from_config(config, load_pretrained=False)
    with torch.no_grad():
        for layer in (model.heads.patch, model.heads.offset):
            layer.weight.mul_(40.0)
    model.save_pretrained(root / "model")
    rows = {"uncalibrated": evaluate(root / "model", manifest, root / "eval-raw", split="test", generate=False,
                                     overlays=0)["summary"]}
    for method in ("temperature", "platt", "isotonic"):
        calibrate(root / "model", manifest, split="train", out=root / method, method=method)
        rows[method] = evaluate(root / method, manifest, root / f"eval-{method}", split="test", generate=False,
                                overlays=0)["summary"]
    table = {name: {k: row[k] for k in KEYS} for name, row in rows.items()}
    out = Path(__file__).parent / "results" / "calibration_phantom.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
