"""Oracle check of the NIH box path: labels.jsonl -> manifest -> StudyDataset -> pointing game / zone F1.

A heat map equal to the data set's own region target must win the pointing game, and the zone
targets must score a zone F1 of 1 against themselves; a transposed map must lose. This pins the
frames end to end (PNG decoded below its listed size, letterbox padding, patch-grid layout) without
training a model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from multimodal.data.dataset import StudyDataset, collate_studies
from multimodal.data.manifest import load_manifest
from multimodal.data.manifest_writers import manifest_from_nih
from multimodal.evaluation.evaluate import region_metrics
from multimodal.models.configuration import MultimodalConfig
from preprocessing.text import load_tokenizer

SIZE, PATCH = 64, 8
# A tall PNG (160 rows x 128 cols): letterboxed to 64 px it is scaled by 0.4 and padded 6 px left.
ROWS, COLS = 160, 128
EFFUSION = (8.0, 100.0, 40.0, 40.0)  # image left (patient's right), lower
NODULE = (88.0, 24.0, 24.0, 24.0)  # image right (patient's left), upper


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nih")
    (folder / "images").mkdir()
    Image.fromarray(np.full((ROWS, COLS), 90, np.uint8)).save(folder / "images" / "a.png")
    row = {"image": "images/a.png", "finding_labels": ["Effusion", "Nodule"], "view_position": "PA",
           "boxes": [{"label": "Effusion", "xywh": list(EFFUSION)}, {"label": "Nodule", "xywh": list(NODULE)}],
           "patient_id": 1, "size_wh": [COLS, ROWS]}
    (folder / "labels.jsonl").write_text(json.dumps(row) + "\n")
    config = MultimodalConfig(observations="nih_boxed", image_size=SIZE, patch_size=PATCH, max_views=1,
                              text_max_length=8, decoder_max_length=8)
    dataset = StudyDataset(load_manifest(manifest_from_nih(folder)), config, load_tokenizer(config.text_encoder))
    assert dataset[0]["pixel_values"].shape == (1, 1, SIZE, SIZE)
    return config, *collate_studies([dataset[0]])


def _predictions(batch, meta, heatmaps):
    return {"heatmaps": heatmaps, "boxes": meta["boxes"], "zone_probs": batch["zone_targets"].numpy(),
            "zone_targets": batch["zone_targets"].numpy(), "zone_mask": batch["zone_mask"].numpy()}


def test_the_boxes_reach_the_evaluation_in_the_letterboxed_square(batch):
    _, _, meta = batch
    boxes = {b["label"]: b["xywh"] for b in meta["boxes"][0]}
    # The reader shrinks the image to the 64 x 51 pixels the letterbox keeps (fit="long"), so
    # y' = 0.4 y (64/160) and x' = (51/128) x + 6 (the columns' own scale; pad (64 - 51) // 2 = 6, left).
    sx = 51 / 128
    assert boxes["Effusion"] == pytest.approx([8 * sx + 6, 40.0, 40 * sx, 16.0], abs=1e-4)
    assert boxes["Nodule"] == pytest.approx([88 * sx + 6, 9.6, 24 * sx, 9.6], abs=1e-4)


def test_a_heat_map_equal_to_the_region_target_wins_the_pointing_game(batch):
    config, tensors, meta = batch
    targets = tensors["region_targets"].numpy()
    oracle, _ = region_metrics(_predictions(tensors, meta, targets), list(config.observations), list(config.zones), SIZE)
    assert oracle["pointing_game"]["overall"] == 1.0
    swapped, _ = region_metrics(_predictions(tensors, meta, targets.swapaxes(-1, -2)), list(config.observations),
                                list(config.zones), SIZE)
    assert swapped["pointing_game"]["overall"] == 0.0


def test_zone_targets_name_the_patients_side_and_score_themselves_perfectly(batch):
    config, tensors, meta = batch
    zones = {o: [config.zones[k] for k in np.flatnonzero(tensors["zone_targets"][0, d].numpy())]
             for d, o in enumerate(config.observations) if tensors["zone_targets"][0, d].any()}
    assert zones == {"Effusion": ["right_lower"], "Nodule": ["left_upper"]}
    result, _ = region_metrics(_predictions(tensors, meta, tensors["region_targets"].numpy()),
                               list(config.observations), list(config.zones), SIZE)
    assert result["zones"]["micro_f1"] == 1.0
