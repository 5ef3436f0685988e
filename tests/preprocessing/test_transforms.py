"""Letterbox geometry, box/mask mapping, the MONAI pipeline and its augmentation."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from preprocessing.radiograph import Radiograph
from preprocessing.transforms import (
    IMAGE_MEAN,
    IMAGE_STD,
    build_image_transforms,
    geometry_for,
    letterbox,
    letterbox_geometry,
    training_augmentation,
)


def image_with_box(rows: int = 100, cols: int = 60, box=(10, 20, 15, 30)) -> np.ndarray:
    """Dim image with a bright rectangle at xywh ``box``."""
    image = np.full((rows, cols), 0.2, np.float32)
    x, y, w, h = box
    image[y:y + h, x:x + w] = 1.0
    return image


def test_letterbox_keeps_aspect_and_pads_equally():
    out, geometry = letterbox(np.ones((100, 50), np.float32), 64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert geometry.scale == pytest.approx(0.64) and geometry.pad_x == 16 and geometry.pad_y == 0
    assert out[:, :16].max() == 0 and out[:, 48:].max() == 0 and out[:, 16:48].min() == pytest.approx(1.0)


def test_mapped_box_lands_on_the_same_pixels():
    box = (10, 20, 15, 30)
    out, geometry = letterbox(image_with_box(box=box), 64)
    x, y, w, h = np.round(geometry.map_boxes([box])[0]).astype(int)
    assert out[y + 1:y + h - 1, x + 1:x + w - 1].min() > 0.9
    assert out[y + h + 1:, x:x + w].max() < 0.5  # below the box: background
    np.testing.assert_allclose(geometry.map_boxes([box], normalized=True), geometry.map_boxes([box]) / 64)


def test_boxes_in_file_pixels_follow_flips_and_reduced_decoding():
    # file 400x240 with the box drawn on it; the reader decoded at half size and flipped left-right
    box_in_file = [40, 80, 60, 120]
    pixels = np.fliplr(image_with_box(200, 120, box=(20, 40, 30, 60)))
    rg = Radiograph(pixels=np.ascontiguousarray(pixels), original_shape=(400, 240), flips=(True, False))
    geometry = geometry_for(rg, 64)
    out, _ = letterbox(rg.pixels, 64)
    x, y, w, h = np.round(geometry.map_boxes([box_in_file])[0]).astype(int)
    assert out[y + 1:y + h - 1, x + 1:x + w - 1].min() > 0.9


def test_eval_pipeline_shapes_and_normalisation():
    out = build_image_transforms(32, train=False)({"image": np.full((1, 40, 40), IMAGE_MEAN + IMAGE_STD, np.float32)})
    assert isinstance(out["image"], torch.Tensor) and out["image"].shape == (1, 32, 32)
    assert out["image"].dtype == torch.float32
    torch.testing.assert_close(out["image"], torch.ones(1, 32, 32))


def test_training_augmentation_has_no_flip():
    names = [type(t).__name__ for t in training_augmentation().transforms]
    assert not any("Flip" in n or "Transpose" in n for n in names)
    assert {"Affine", "RandomBrightnessContrast", "RandomGamma", "GaussNoise"} <= set(names)


def test_augmentation_keeps_left_on_the_left():
    image = np.zeros((1, 64, 64), np.float32)
    image[:, 16:48, 4:24] = 1.0  # bright on the image left
    pipeline = build_image_transforms(64, train=True)
    pipeline.set_random_state(seed=0)
    for _ in range(20):
        out = pipeline({"image": image})["image"][0]
        assert out[:, :32].mean() > out[:, 32:].mean()


def test_augmentation_moves_masks_and_boxes_with_the_image():
    box = (10, 20, 15, 30)
    image = image_with_box(box=box)
    mask = np.zeros((2, 100, 60), np.uint8)
    mask[0] = image > 0.5
    pipeline = build_image_transforms(64, train=True)
    pipeline.set_random_state(seed=1)
    for _ in range(10):
        out = pipeline({"image": image[None], "mask": mask, "boxes": [box], "box_labels": ["Nodule"]})
        bright = out["image"][0] > (0.6 - IMAGE_MEAN) / IMAGE_STD
        moved = out["mask"][0].bool()
        assert out["mask"].shape == (2, 64, 64) and out["mask"][1].sum() == 0
        assert (bright & moved).sum() >= 0.8 * moved.sum()
        x, y, w, h = out["boxes"][0].tolist()
        inside = bright[int(y) + 1:int(y + h) - 1, int(x) + 1:int(x + w) - 1]
        assert out["box_labels"] == ["Nodule"] and inside.float().mean() > 0.8


def test_geometry_is_exposed_for_callers():
    out = build_image_transforms(32, train=False)({"image": np.zeros((50, 100), np.float32)})
    assert out["geometry"] == letterbox_geometry((50, 100), 32)
