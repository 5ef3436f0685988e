"""StudyDataset / collate_studies: the batch is exactly the model's inputs, targets follow the boxes."""

from __future__ import annotations

import inspect

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from multimodal.data.dataset import MODEL_KEYS, StudyDataset, box_frequency, collate_studies
from multimodal.data.manifest import Box, StudyRecord, load_manifest
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel
from preprocessing.errors import ImageReadError
from preprocessing.text import load_tokenizer

SIZE, PATCH = 64, 8


@pytest.fixture(scope="module")
def config() -> MultimodalConfig:
    return MultimodalConfig(observations="phantom", image_size=SIZE, patch_size=PATCH, max_views=2,
                            text_max_length=32, decoder_max_length=48)


@pytest.fixture(scope="module")
def tokenizer(config):
    return load_tokenizer(config.text_encoder)


def _png(path, rows: int, cols: int, bright: tuple[int, int, int, int] | None = None) -> str:
    """A dark gray PNG; ``bright`` (x, y, w, h) is painted white."""
    array = np.full((rows, cols), 40, np.uint8)
    if bright is not None:
        x, y, w, h = bright
        array[y:y + h, x:x + w] = 255
    Image.fromarray(array).save(path)
    return str(path)


def test_the_batch_holds_exactly_the_model_forward_arguments(phantom_manifest, config, tokenizer):
    records = load_manifest(phantom_manifest)[:4]
    batch, meta = collate_studies([StudyDataset(records, config, tokenizer)[i] for i in range(4)])
    forward = set(inspect.signature(MultimodalModel.forward).parameters) - {"self", "output_attentions"}
    assert set(batch) == forward == set(MODEL_KEYS)
    d, z, grid = len(config.observations), len(config.zones), SIZE // PATCH
    assert batch["pixel_values"].shape == (4, 2, 1, SIZE, SIZE) and batch["pixel_values"].dtype == torch.float32
    assert batch["view_mask"].dtype == torch.bool
    assert batch["view_mask"].sum(1).tolist() == [len(r.images) for r in records]
    assert batch["region_targets"].shape == (4, d, grid, grid) and batch["zone_targets"].shape == (4, d, z)
    for key in ("label_mask", "region_mask", "zone_mask"):
        assert batch[key].shape == (4, d) and batch[key].dtype == torch.bool
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["input_ids"].shape[1] <= 32
    assert batch["findings_ids"].shape == batch["findings_mask"].shape and batch["findings_ids"].shape[1] <= 48
    assert meta["study_ids"] == [r.study_id for r in records]
    # Phantom labels are all known; positives have boxes and zones, negatives get empty targets.
    assert batch["label_mask"].all() and batch["region_mask"].all() and batch["zone_mask"].all()
    positives = batch["labels"] == 1
    assert torch.equal(batch["region_targets"].flatten(2).amax(-1) == 1, positives)
    assert torch.equal(batch["zone_targets"].amax(-1) == 1, positives)
    assert tokenizer.decode(batch["findings_ids"][0][batch["findings_mask"][0].bool()], skip_special_tokens=True) \
        == records[0].findings.lower()


def test_region_targets_follow_the_box_through_the_letterbox(tmp_path, config, tokenizer):
    # A tall image (128 x 64): letterboxed to 64 x 64 it is scaled by 1/2 and padded 16 px on each side.
    image = _png(tmp_path / "tall.png", 128, 64)
    record = StudyRecord(study_id="s", images=[image], labels={"Lung Lesion": 1, "Pneumothorax": 0},
                         boxes=[Box(label="Lung Lesion", xywh=(0, 64, 32, 32))])
    item = StudyDataset([record], config, tokenizer)[0]
    target = item["region_targets"][config.observations.index("Lung Lesion")]
    # Square pixels x 16..32, y 32..48 -> patches (8 px) columns 2-3, rows 4-5.
    expected = torch.zeros(8, 8)
    expected[4:6, 2:4] = 1
    assert torch.equal(target, expected)
    assert item["boxes"] == [{"label": "Lung Lesion", "xywh": [16.0, 32.0, 16.0, 16.0]}]
    mask = item["region_mask"].tolist()
    assert mask[config.observations.index("Pneumothorax")] and not mask[config.observations.index("Cardiomegaly")]


def test_region_targets_follow_the_display_flip_of_a_dicom_file(tmp_path, config, tokenizer):
    """A box in the file's pixels lands mirrored when the reader flips the image to display orientation."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID, meta.MediaStorageSOPClassUID = ExplicitVRLittleEndian, SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = SecondaryCaptureImageStorage, "1.2.3.4", "1.2.3"
    ds.Modality, ds.PatientOrientation = "DX", ["R", "F"]  # rows run to the patient's right: flip needed
    pixels = np.full((64, 64), 100, np.uint16)
    pixels[0:16, 0:16] = 4000  # stored top-left corner
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 64, 64, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    path = tmp_path / "flipped.dcm"
    ds.save_as(path, enforce_file_format=True)
    record = StudyRecord(study_id="s", images=[str(path)], labels={"Lung Lesion": 1},
                         boxes=[Box(label="Lung Lesion", xywh=(0, 0, 16, 16))])
    item = StudyDataset([record], config, tokenizer)[0]
    target = item["region_targets"][config.observations.index("Lung Lesion")]
    assert target[0:2, 6:8].eq(1).all() and target.sum() == 4
    assert item["pixel_values"][0, 0, 0:16, 48:64].mean() > item["pixel_values"][0, 0, 0:16, 0:16].mean()


def test_training_augmentation_moves_the_targets_with_the_image(tmp_path, config, tokenizer):
    image = _png(tmp_path / "blob.png", 64, 64, bright=(8, 8, 16, 16))
    record = StudyRecord(study_id="s", images=[image], labels={"Lung Lesion": 1},
                         boxes=[Box(label="Lung Lesion", xywh=(8, 8, 16, 16))])
    dataset = StudyDataset([record], config, tokenizer, train=True)
    d = config.observations.index("Lung Lesion")
    for _ in range(8):
        item = dataset[0]
        target = item["region_targets"][d].bool()
        patches = item["pixel_values"][0, 0].unfold(0, PATCH, PATCH).unfold(1, PATCH, PATCH).mean((-1, -2))
        assert target.any()
        assert patches[target].mean() > patches[~target].mean() + 1.0


def test_labels_match_names_loosely_and_unknown_ones_are_masked(tmp_path, tokenizer):
    config = MultimodalConfig(observations=["Pleural Thickening", "Edema", "Atelectasis"], image_size=SIZE,
                              patch_size=PATCH)
    record = StudyRecord(study_id="s", labels={"Pleural_Thickening": 1, "edema": 0, "Hernia": 1},
                         regions={"Pleural_Thickening": ["left_lower", "left_middle"]})
    item = StudyDataset([record], config, tokenizer)[0]
    assert item["labels"].tolist() == [1.0, 0.0, 0.0]
    assert item["label_mask"].tolist() == [True, True, False]
    left = [config.zones.index("left_middle"), config.zones.index("left_lower")]
    assert item["zone_targets"][0].nonzero().flatten().tolist() == sorted(left)
    assert item["zone_mask"].tolist() == [True, True, False]


def test_a_text_only_study_has_no_views_and_empty_text_gives_cls_sep(config, tokenizer):
    item = StudyDataset([StudyRecord(study_id="s", findings="No pneumothorax.")], config, tokenizer)[0]
    assert not item["view_mask"].any() and item["pixel_values"].abs().sum() == 0
    ids = item["input_ids"][item["attention_mask"].bool()].tolist()
    assert ids == [tokenizer.cls_token_id, tokenizer.sep_token_id]


def test_an_unreadable_image_raises_with_its_path_or_is_skipped(tmp_path, config, tokenizer):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not an image at all")
    good = StudyRecord(study_id="good", images=[_png(tmp_path / "ok.png", 32, 32)])
    records = [StudyRecord(study_id="bad", images=[str(bad)]), good]
    with pytest.raises(ImageReadError, match="broken.dcm"):
        StudyDataset(records, config, tokenizer)[0]
    dataset = StudyDataset(records, config, tokenizer, skip_bad=True)
    batch, meta = collate_studies([dataset[0], dataset[1]])
    assert meta["study_ids"] == ["good"] and batch["pixel_values"].shape[0] == 1
    assert collate_studies([dataset[0]]) == (None, {"study_ids": [], "boxes": []})


def test_the_cache_serves_the_same_pixels(tmp_path, config, tokenizer):
    record = StudyRecord(study_id="s", images=[_png(tmp_path / "a.png", 48, 40, bright=(4, 4, 8, 8))])
    plain = StudyDataset([record], config, tokenizer)[0]["pixel_values"]
    cached = StudyDataset([record], config, tokenizer, cache_dir=tmp_path / "cache")
    first, second = cached[0]["pixel_values"], cached[0]["pixel_values"]
    assert list((tmp_path / "cache").rglob("*.npz"))
    assert torch.allclose(first, plain, atol=1e-2) and torch.allclose(second, plain, atol=1e-2)


def test_box_frequency_is_the_share_of_boxed_studies_covering_each_patch(tmp_path, config, tokenizer):
    image = _png(tmp_path / "square.png", 64, 64)
    lesion = lambda x: Box(label="Lung Lesion", xywh=(x, 0, 16, 16))  # noqa: E731 - two 2 x 2-patch boxes
    records = [StudyRecord(study_id="a", images=[image], labels={"Lung Lesion": 1}, boxes=[lesion(0)]),
               StudyRecord(study_id="b", images=[image], labels={"Lung Lesion": 1}, boxes=[lesion(16)]),
               StudyRecord(study_id="c", images=[image], labels={"Lung Lesion": 0})]  # no box: not counted
    frequency = box_frequency(StudyDataset(records, config, tokenizer))
    d = config.observations.index("Lung Lesion")
    expected = torch.zeros(8, 8)
    expected[0:2, 0:2], expected[0:2, 2:4] = 0.5, 0.5
    assert torch.equal(frequency[d], expected)
    assert frequency.sum() == expected.sum()  # observations without boxes stay 0
