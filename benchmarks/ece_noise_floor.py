"""How small an ECE can a test split show? The ECE of a perfectly calibrated model on the same cases.

    python benchmarks/ece_noise_floor.py EVAL_DIR [--draws 500]

Reads ``EVAL_DIR/predictions.npz`` (written by ``mmdx evaluate``), takes the model's probabilities
as the truth, draws labels ``y ~ Bernoulli(p)`` for every valid (study, observation) pair and computes
the macro ECE (15 equal-width bins, as ``mmdx evaluate``). The mean and 95 % range over the draws is
the ECE that sampling noise alone gives on a split of this size: a measured ECE inside it cannot be
told from perfect calibration.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from multimodal.evaluation.calibration import calibration_metrics
from multimodal.evaluation.classification import valid_mask


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("eval_dir")
    p.add_argument("--draws", type=int, default=500)
    a = p.parse_args()
    data = np.load(Path(a.eval_dir) / "predictions.npz", allow_pickle=False)
    probs, ok, names = data["probs"], valid_mask(data["labels"], data["label_mask"]), list(data["observations"])
    rng = np.random.default_rng(0)
    eces = []
    for _ in range(a.draws):
        labels = np.where(ok, (rng.random(probs.shape) < probs).astype(float), -1.0)
        eces.append(calibration_metrics(probs, labels, ok, names)["macro"]["ece"])
    print(json.dumps({"n_studies": len(probs), "draws": a.draws, "macro_ece_mean": float(np.mean(eces)),
                      "macro_ece_95": [float(v) for v in np.percentile(eces, [2.5, 97.5])]}))


if __name__ == "__main__":
    main()
