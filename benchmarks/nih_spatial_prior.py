"""Pointing game of the spatial prior alone: every image pointed at its observation's most frequent
box location on the training split (no image evidence), on the validation and test splits.

The floor a heat map with ``model.spatial_prior`` starts from, and the baseline any model's pointing
game should beat. Training boxes only; the maps are on the config's heat-map grid, peaks found as
``mmdx evaluate`` finds them (bilinear upsampling, 15 px per 1024 tolerance, mean over observations)::

    python benchmarks/nih_spatial_prior.py --config configs/nih-boxes.yaml --manifest runs/nih/manifest.jsonl
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from multimodal.data.dataset import StudyDataset, box_frequency
from multimodal.data.manifest import load_manifest
from multimodal.evaluation.region import pointing_game, pointing_trials
from multimodal.models.encoders import build_image_encoder
from multimodal.training.config import load_train_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--set", action="append", default=[], help="config overrides a.b=c")
    a = parser.parse_args()
    cfg = load_train_config(a.config, [f"data.manifest={a.manifest}", *a.set])
    config = cfg.multimodal_config()
    grid = build_image_encoder(config).grid_size
    dataset = lambda split: StudyDataset(load_manifest(a.manifest, splits=split), config,  # noqa: E731
                                         cache_dir=cfg.data.cache_dir, grid_size=grid)
    frequency = box_frequency(dataset(cfg.data.train_split)).numpy()
    result = {"grid": list(grid)}
    for split in (cfg.data.val_split, "test"):
        data = dataset(split)
        boxes = [data[i]["boxes"] for i in range(len(data))]
        maps = np.repeat(frequency[None], len(boxes), axis=0)
        trials = pointing_trials(maps, boxes, config.observations, config.image_size)
        hits: dict[str, list[bool]] = {}
        for _, d, _, _, hit in trials:
            hits.setdefault(config.observations[d], []).append(hit)
        game = pointing_game(hits)
        result[split] = {"images": len(boxes), "pointing_game": round(game["mean"], 3),
                         "per_observation": {k: round(v["accuracy"], 2) for k, v in game["per_observation"].items()}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
