"""Training/evaluation and scoring feed a model the same pixel_values for the same file."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal.data.dataset import StudyDataset
from multimodal.data.manifest import StudyRecord
from multimodal.inference.prepare import prepare_study
from multimodal.inference.sources import StudyInput
from multimodal.models.configuration import MultimodalConfig

REAL_COMPRESSED = ["966_fixed.dcm", "RG1_J2KI.dcm", "RG3_J2KR.dcm", "RG2_JLSL.dcm", "RG2_JPLL.dcm",
                   "RG2_JPLY_fixed.dcm"]


@pytest.mark.parametrize("size", [64, 224])
def test_dataset_and_scoring_give_the_same_pixel_values_on_real_compressed_dicoms(shared_data, tmp_path, size):
    files = [shared_data / "dicom" / name for name in REAL_COMPRESSED]
    config = MultimodalConfig(observations="phantom", image_size=size, patch_size=16, max_views=1)
    records = [StudyRecord(study_id=f.stem, images=[str(f)]) for f in files]
    for cache in (None, tmp_path / "cache"):
        dataset = StudyDataset(records, config, train=False, cache_dir=cache)
        for k, path in enumerate(files):
            trained_on = dataset[k]["pixel_values"][0, 0].numpy()
            scored = prepare_study(StudyInput(path.stem, (str(path),)), size, max_views=1).pixel_values[0, 0]
            tolerance = 1e-5 if cache is None else 2e-3 / 0.25  # the cache stores float16 in [0, 1]
            assert np.abs(trained_on - scored).max() <= tolerance, path.name
