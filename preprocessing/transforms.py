"""From a :class:`Radiograph`'s pixels to model input: letterbox, augmentation, normalisation.

The pipeline is a MONAI ``Compose`` of dictionary transforms over a sample dict::

    {"image": float32 [1, H, W] or [H, W] in [0, 1],          # Radiograph.pixels
     "mask":  optional, [K, H, W] (region masks in the same pixel frame as "image"),
     "boxes": optional, [N, 4] xywh in the pixels of "image" (or of "original_shape", see below),
     "box_labels": optional, N labels kept aligned with "boxes",
     "original_shape", "flips": optional, the Radiograph's fields, when "boxes" are in file pixels}

``build_image_transforms(size, train)`` returns, in order:

1. :class:`Letterboxd`: resize keeping the aspect ratio so the long side is ``size``, pad the short
   side equally on both ends with 0 (black) to ``size x size``. "mask" goes the same way (nearest),
   "boxes" are mapped to square pixels; the :class:`LetterboxGeometry` is stored under "geometry".
2. training only, :class:`Augmentd`: albumentations ``Affine`` (rotate ±7°, scale 0.9-1.1, shift
   ±5 %), ``RandomBrightnessContrast``, ``RandomGamma``, ``GaussNoise``. It moves "mask" and
   "boxes" together with the image (boxes leaving the image are dropped with their labels).
   There is **no horizontal flip**: laterality is part of the labels.
3. ``NormalizeIntensityd`` with ``IMAGE_MEAN`` / ``IMAGE_STD`` (defined once, in :mod:`preprocessing.letterbox`),
   then tensors: "image" float32 ``[1, size, size]``, "mask" ``[K, size, size]``, "boxes" ``[N, 4]``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import replace
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from monai.transforms import Compose, EnsureTyped, MapTransform, NormalizeIntensityd, Randomizable

from preprocessing.letterbox import (  # noqa: F401 - re-exported: the pipeline's public names
    IMAGE_MEAN,
    IMAGE_STD,
    LetterboxGeometry,
    geometry_for,
    letterbox,
    letterbox_geometry,
    normalize,
)


def _image_2d(image: Any) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"'image' must be [H, W] or [1, H, W], got shape {array.shape}")
    return array.astype(np.float32, copy=False)


class Letterboxd(MapTransform):
    """Letterbox "image" to ``[1, size, size]``; "mask" ``[K, H, W]`` and "boxes" follow (see module doc)."""

    def __init__(self, size: int, image_key: str = "image", mask_key: str = "mask", boxes_key: str = "boxes"):
        super().__init__(keys=[image_key], allow_missing_keys=False)
        self.size, self.image_key, self.mask_key, self.boxes_key = size, image_key, mask_key, boxes_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _image_2d(d[self.image_key])
        square, geometry = letterbox(image, self.size)
        d[self.image_key] = square[None]
        if d.get(self.mask_key) is not None:
            mask = np.asarray(d[self.mask_key])
            if mask.shape[-2:] != image.shape:
                raise ValueError(f"'{self.mask_key}' {mask.shape} must be [K, H, W] with H, W = image {image.shape}")
            channels_last, _ = letterbox(np.moveaxis(mask.astype(np.float32), 0, -1), self.size, cv2.INTER_NEAREST)
            d[self.mask_key] = np.moveaxis(channels_last, -1, 0).astype(mask.dtype)
        if d.get("original_shape") is not None:
            geometry = replace(geometry, coord_shape=tuple(d["original_shape"]),
                               flips=tuple(d.get("flips", (False, False))))
        if d.get(self.boxes_key) is not None:
            d[self.boxes_key] = geometry.map_boxes(d[self.boxes_key]).astype(np.float32)
        d["geometry"] = geometry
        return d


def training_augmentation() -> A.Compose:
    """The albumentations pipeline for training (no horizontal flip); boxes are COCO xywh pixels."""
    return A.Compose(
        [
            A.Affine(rotate=(-7, 7), scale=(0.9, 1.1), translate_percent=(-0.05, 0.05),
                     border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0, p=0.8),
            A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
            A.RandomGamma(gamma_limit=(85, 115), p=0.5),
            A.GaussNoise(std_range=(0.005, 0.02), p=0.3),
        ],
        bbox_params=A.BboxParams(format="coco", label_fields=["box_labels"], clip=True, min_visibility=0.2),
        seed=None,
    )


class Augmentd(MapTransform, Randomizable):
    """Training augmentation of "image" ``[1, S, S]`` moving "mask" ``[K, S, S]`` and "boxes" with it."""

    def __init__(self, image_key: str = "image", mask_key: str = "mask", boxes_key: str = "boxes",
                 labels_key: str = "box_labels"):
        super().__init__(keys=[image_key], allow_missing_keys=False)
        self.image_key, self.mask_key, self.boxes_key, self.labels_key = image_key, mask_key, boxes_key, labels_key
        self.pipeline = training_augmentation()

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> "Augmentd":
        super().set_random_state(seed, state)
        self.pipeline.set_random_seed(int(self.R.randint(0, 2**31 - 1)))
        return self

    def randomize(self, data: Any = None) -> None:
        """Randomness lives in the albumentations pipeline (seeded by ``set_random_state``)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = _image_2d(d[self.image_key])
        boxes = np.asarray(d.get(self.boxes_key) if d.get(self.boxes_key) is not None else np.zeros((0, 4)),
                           dtype=np.float32).reshape(-1, 4)
        labels = list(d.get(self.labels_key) if d.get(self.labels_key) is not None else range(len(boxes)))
        kwargs: dict[str, Any] = {"image": image, "bboxes": boxes, "box_labels": labels}
        if d.get(self.mask_key) is not None:
            kwargs["masks"] = list(np.asarray(d[self.mask_key]))
        out = self.pipeline(**kwargs)
        d[self.image_key] = np.clip(out["image"], 0.0, 1.0)[None]
        if "masks" in kwargs:
            d[self.mask_key] = np.stack(out["masks"]) if len(out["masks"]) else np.asarray(d[self.mask_key])
        if d.get(self.boxes_key) is not None:
            d[self.boxes_key] = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            if d.get(self.labels_key) is not None:
                d[self.labels_key] = list(out["box_labels"])
        return d


def build_image_transforms(size: int, train: bool) -> Compose:
    """The image pipeline for a sample dict (module doc): letterbox, [augment], normalise, tensors."""
    steps: list[Any] = [Letterboxd(size)]
    if train:
        steps.append(Augmentd())
    steps += [
        NormalizeIntensityd(keys="image", subtrahend=IMAGE_MEAN, divisor=IMAGE_STD),
        EnsureTyped(keys=["image", "mask", "boxes"], data_type="tensor", track_meta=False, allow_missing_keys=True),
    ]
    return Compose(steps)
