"""Manifest studies as model inputs: :class:`StudyDataset` and :func:`collate_studies`.

One item is one study. ``collate_studies`` returns ``(batch, meta)``:

- ``batch`` holds exactly the keyword arguments of ``MultimodalModel.forward`` (shapes below, B
  studies, V = ``max_views``, S = ``image_size``, T <= ``text_max_length``, L <= ``decoder_max_length``,
  D observations, Z zones, h x w the first view's patch grid), so ``model(**batch)`` works;
- ``meta`` holds what the model does not take: ``study_ids`` (list of B str) and ``boxes`` (per
  study, a list of ``{"label", "xywh"}`` in pixels of the S x S model input of the first view,
  after letterbox and augmentation; for the pointing game).

=================  ===================  ==========================================================
key                shape, dtype         meaning
=================  ===================  ==========================================================
pixel_values       [B, V, 1, S, S] f32  letterboxed, (augmented when training), normalised views
view_mask          [B, V] bool          True where a view is present (the first images of a study)
input_ids          [B, T] long          tokenised indication ``text`` (``[CLS] [SEP]`` when empty)
attention_mask     [B, T] long          1 on tokens, 0 on padding
labels             [B, D] f32           1 / 0 / -1 (uncertain); 0 where unknown
label_mask         [B, D] bool          False where the manifest does not know the label
region_targets     [B, D, h, w] f32     1 on patches inside a box of that observation (first view)
region_mask        [B, D] bool          True where a box exists, or the label is 0 (all-zero target)
zone_targets       [B, D, Z] f32        1 for the zones in the manifest's ``regions``
zone_mask          [B, D] bool          True where zones are listed, or the label is 0
findings_ids       [B, L] long          tokenised ``findings`` (``[CLS] [SEP]`` when empty)
findings_mask      [B, L] long          1 on tokens, 0 on padding
=================  ===================  ==========================================================

Manifest label names are matched to ``config.observations`` ignoring case and ``_`` vs space
(NIH's ``Pleural_Thickening`` matches ``Pleural Thickening``); names the config does not list are
ignored, and observations the manifest does not give are masked out.

A box becomes a mask channel in the image's pixel frame, goes through the same letterbox and
augmentation as the image (nearest-neighbour), and is pooled onto the patch grid: a patch is 1
when the box covers at least :data:`MIN_PATCH_COVER` of it, and the most-covered patch of every
box is 1 so that small boxes never vanish.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from multimodal.data.manifest import StudyRecord
from preprocessing.cache import PreprocessCache
from preprocessing.model_input import MODEL_FIT, read_for_model
from preprocessing.errors import ConfigError, ImageReadError
from preprocessing.radiograph import Radiograph
from preprocessing.text import load_tokenizer, normalize_text
from preprocessing.transforms import LetterboxGeometry, build_image_transforms

log = logging.getLogger(__name__)

MIN_PATCH_COVER = 0.25
MODEL_KEYS = ("pixel_values", "view_mask", "input_ids", "attention_mask", "labels", "label_mask",
              "region_targets", "region_mask", "zone_targets", "zone_mask", "findings_ids", "findings_mask")
META_KEYS = ("study_id", "boxes")


def _label_key(name: str) -> str:
    return name.lower().replace("_", " ").strip()


class StudyDataset(Dataset):
    """Studies of a manifest as per-study dicts of tensors (see the module doc for keys and shapes).

    ``model_config`` is a :class:`~multimodal.models.configuration.MultimodalConfig` (observations,
    zones, image_size, max_views, text_max_length, decoder_max_length, text_encoder, grid_size).
    ``tokenizer`` defaults to the text encoder's. ``train`` turns on augmentation. ``cache_dir``
    caches decoded images (:class:`preprocessing.cache.PreprocessCache`). ``grid_size`` (h, w) is
    needed only when the config cannot tell it (timm backbones).

    An unreadable image raises :class:`~preprocessing.errors.ImageReadError` naming the file; with
    ``skip_bad=True`` the study is logged and its item is None, which :func:`collate_studies` drops.
    """

    def __init__(self, records: Sequence[StudyRecord], model_config: Any, tokenizer: Any = None, train: bool = False,
                 cache_dir: str | Path | None = None, grid_size: tuple[int, int] | None = None,
                 skip_bad: bool = False):
        self.records = list(records)
        self.config = model_config
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_config.text_encoder)
        self.train = train
        self.skip_bad = skip_bad
        self.size = int(model_config.image_size)
        self.grid_size = tuple(grid_size or model_config.grid_size or ())
        if len(self.grid_size) != 2:
            raise ConfigError("grid_size", "unknown for this image encoder; pass grid_size=(h, w) to StudyDataset")
        self.observations = list(model_config.observations)
        self._index = {_label_key(o): d for d, o in enumerate(self.observations)}
        self.zones = list(model_config.zones)
        self.transforms = build_image_transforms(self.size, train)
        self.cache = (PreprocessCache(cache_dir, {"target_size": self.size, "fit": MODEL_FIT})
                      if cache_dir is not None else None)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        record = self.records[index]
        try:
            views = [self._read(path) for path in record.images[: self.config.max_views]]
        except ImageReadError as err:
            if not self.skip_bad:
                raise
            log.warning("skipping study %s: %s", record.study_id, err)
            return None
        item = self._labels(record)
        item.update(self._images(record, views, item))
        item.update(self._tokens(record.text, self.config.text_max_length, "input_ids", "attention_mask"))
        item.update(self._tokens(record.findings, self.config.decoder_max_length, "findings_ids", "findings_mask"))
        item["study_id"] = record.study_id
        return item

    def _read(self, path: str) -> Radiograph:
        if self.cache is not None:
            return self.cache.read_radiograph(path)
        return read_for_model(path, self.size)  # the read of scoring too: same pixel_values for the same file

    def _observation(self, name: str) -> int | None:
        return self._index.get(_label_key(name))

    def _labels(self, record: StudyRecord) -> dict[str, torch.Tensor]:
        d, z = len(self.observations), len(self.zones)
        labels, label_mask = torch.zeros(d), torch.zeros(d, dtype=torch.bool)
        zone_targets, zone_mask = torch.zeros(d, z), torch.zeros(d, dtype=torch.bool)
        for name, value in record.labels.items():
            i = self._observation(name)
            if i is not None and value is not None:
                labels[i], label_mask[i] = float(value), True
                zone_mask[i] = value == 0
        for name, zones in record.regions.items():
            i = self._observation(name)
            known = [self.zones.index(zone) for zone in zones if zone in self.zones]
            if i is not None and known:
                zone_targets[i, known], zone_mask[i] = 1.0, True
        return {"labels": labels, "label_mask": label_mask, "zone_targets": zone_targets, "zone_mask": zone_mask}

    def _images(self, record: StudyRecord, views: list[Radiograph], item: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Pixel values, view mask, region targets/mask and model-frame boxes of the first view."""
        v, s, (h, w) = self.config.max_views, self.size, self.grid_size
        pixel_values = torch.zeros(v, 1, s, s)
        view_mask = torch.zeros(v, dtype=torch.bool)
        region_targets = torch.zeros(len(self.observations), h, w)
        region_mask = item["label_mask"] & (item["labels"] == 0)
        boxes_out: list[dict[str, Any]] = []
        for k, radiograph in enumerate(views):
            boxes = [b for b in record.boxes if b.image == 0 and self._observation(b.label) is not None] if k == 0 else []
            sample = self.transforms(_sample(radiograph, boxes))
            pixel_values[k] = sample["image"]
            view_mask[k] = True
            if not boxes:
                continue
            cover = F.adaptive_avg_pool2d(torch.as_tensor(sample["mask"]).float()[None], (h, w))[0]  # [N, h, w]
            for box, box_cover in zip(boxes, cover):
                if box_cover.max() <= 0:
                    continue  # augmentation moved the box out of the image
                i = self._observation(box.label)
                target = box_cover >= MIN_PATCH_COVER
                target.view(-1)[box_cover.argmax()] = True
                region_targets[i] = torch.maximum(region_targets[i], target.float())
                region_mask[i] = True
            boxes_out = [{"label": label, "xywh": [float(c) for c in xywh]}
                         for label, xywh in zip(sample["box_labels"], np.asarray(sample["boxes"]).tolist())]
        return {"pixel_values": pixel_values, "view_mask": view_mask, "region_targets": region_targets,
                "region_mask": region_mask, "boxes": boxes_out}

    def _tokens(self, text: str, max_length: int, ids_key: str, mask_key: str) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(normalize_text(text), max_length=max_length, truncation=True, padding="max_length",
                                 return_tensors="pt")
        return {ids_key: encoded["input_ids"][0], mask_key: encoded["attention_mask"][0]}


def box_frequency(dataset: StudyDataset) -> torch.Tensor:
    """``[D, h, w]``: for each observation, the share of the dataset's studies with its boxes whose
    region target covers each patch (0 everywhere for an observation without boxes).

    Build ``dataset`` without augmentation (``train=False``) so the frequencies describe the images
    as the model sees them at scoring time. Unreadable studies (``skip_bad``) are left out.
    """
    total = torch.zeros(len(dataset.observations), *dataset.grid_size)
    count = torch.zeros(len(dataset.observations))
    for index in range(len(dataset)):
        item = dataset[index]
        if item is None:
            continue
        boxed = item["region_targets"].flatten(1).amax(1) > 0
        total[boxed] += item["region_targets"][boxed]
        count += boxed.float()
    return total / count.clamp(min=1.0)[:, None, None]


def _sample(radiograph: Radiograph, boxes: list) -> dict[str, Any]:
    """The transform input for one view: image, and for boxes one mask channel each in its pixel frame."""
    sample: dict[str, Any] = {"image": radiograph.pixels}
    if not boxes:
        return sample
    rows, cols = radiograph.pixels.shape
    # Scale 1, no padding: maps boxes from the file's pixels (before display flips) to the image's.
    to_pixels = LetterboxGeometry(shape=(rows, cols), size=max(rows, cols), scale=1.0, pad_x=0.0, pad_y=0.0,
                                  coord_shape=tuple(radiograph.original_shape), flips=tuple(radiograph.flips))
    file_boxes = np.array([b.xywh for b in boxes], dtype=np.float64)
    mask = np.zeros((len(boxes), rows, cols), dtype=np.uint8)
    for channel, (x, y, w, h) in zip(mask, to_pixels.map_boxes(file_boxes)):
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + w)), cols), min(int(np.ceil(y + h)), rows)
        channel[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = 1
    sample.update(mask=mask, boxes=file_boxes, box_labels=[b.label for b in boxes],
                  original_shape=tuple(radiograph.original_shape), flips=tuple(radiograph.flips))
    return sample


def collate_studies(items: Sequence[dict[str, Any] | None]) -> tuple[dict[str, torch.Tensor] | None, dict[str, list]]:
    """Stack study items into ``(batch, meta)`` (module doc); None items (skipped studies) are dropped.

    Token tensors are cut to the longest sequence in the batch. When every item was None the batch
    is None (and ``meta`` lists are empty): a training loop skips it.
    """
    kept = [item for item in items if item is not None]
    meta = {"study_ids": [item["study_id"] for item in kept], "boxes": [item["boxes"] for item in kept]}
    if not kept:
        return None, meta
    batch = {key: torch.stack([item[key] for item in kept]) for key in MODEL_KEYS}
    for ids_key, mask_key in (("input_ids", "attention_mask"), ("findings_ids", "findings_mask")):
        length = max(int(batch[mask_key].sum(1).max()), 1)
        batch[ids_key], batch[mask_key] = batch[ids_key][:, :length], batch[mask_key][:, :length]
    return batch, meta
