"""The Predictor API: any study form in, decisions, zones, peaks in source pixels and heat maps out."""

from __future__ import annotations

import numpy as np
import pytest

from multimodal.inference.predictor import Predictor
from multimodal.inference.prepare import square_to_pixels
from preprocessing.transforms import letterbox_geometry


@pytest.mark.parametrize("flips", [(False, False), (True, False), (False, True)])
def test_square_coordinates_map_back_to_the_stored_image(flips):
    # A 400 x 240 file read at half resolution (200 x 120), then letterboxed to 64 px.
    geometry = letterbox_geometry((200, 120), 64, coord_shape=(400, 240), flips=flips)
    ax, bx, ay, by = square_to_pixels(geometry)
    x, y = 30.0, 50.0
    u, v = geometry.map_boxes([[x, y, 0.0, 0.0]], normalized=True)[0, :2]
    assert ax * u + bx == pytest.approx(x) and ay * v + by == pytest.approx(y)


def test_array_study_gives_decisions_zones_and_heatmap_files(tiny_model_dir, tmp_path):
    predictor = Predictor.from_pretrained(tiny_model_dir, device="cpu")
    image = np.random.default_rng(0).integers(0, 4096, size=(90, 70), dtype=np.uint16)

    result = predictor.predict(image, text="Shortness of breath.", study_id="s1", generate=False,
                               heatmap_dir=tmp_path)

    assert list(result.observations) == predictor.config.observations
    cardiomegaly = result.observations["Cardiomegaly"]  # threshold 0 in the tiny model: always positive
    assert cardiomegaly.positive and cardiomegaly.zones
    assert not result.observations["Pneumothorax"].zones  # negatives carry no zones
    assert 0 <= cardiomegaly.peak.x <= 70 and 0 <= cardiomegaly.peak.y <= 90
    assert result.heatmaps.shape == (len(result.observations), 4, 4)
    assert (tmp_path / "s1.npz").is_file() and (tmp_path / "s1_Cardiomegaly.png").is_file()
    assert result.model["name"] == "mmdx-test" and len(result.model["config_hash"]) == 16
    assert set(result.timings_ms) == {"decode", "preprocess", "model", "generate"}
