"""Radiograph corruptions: shape, dtype and range kept, severity ordered, boxes follow geometry."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.corruptions import CORRUPTIONS, SEVERITIES, affine, corrupt, map_boxes


def _film(h: int = 72, w: int = 96) -> np.ndarray:
    """A smooth image with a bright disc: structure for blur and codecs to damage."""
    y, x = np.mgrid[0:h, 0:w]
    film = 0.2 + 0.6 * (x / w) * (y / h)
    film[(x - 40) ** 2 + (y - 30) ** 2 < 100] = 0.95
    return film.astype(np.float32)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_every_corruption_keeps_shape_dtype_and_range_and_changes_the_image(name):
    film = _film()
    before = film.copy()
    for severity in SEVERITIES:
        out = corrupt(film, name, severity, np.random.default_rng(severity))
        assert out.shape == film.shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert np.abs(out - film).mean() > 1e-4, f"{name} at {severity} left the image unchanged"
    np.testing.assert_array_equal(film, before)  # the input is not modified


@pytest.mark.parametrize("name", ["gaussian_noise", "blur", "contrast", "bit_depth", "jpeg", "jpeg2000", "resample"])
def test_damage_grows_with_severity(name):
    film = _film()
    errors = [np.abs(corrupt(film, name, s, np.random.default_rng(0)) - film).mean() for s in SEVERITIES]
    assert errors[-1] > errors[0] and errors[-1] > errors[-2] * 0.99


def test_same_generator_seed_gives_the_same_corruption():
    film = _film()
    a = corrupt(film, "overlay", 3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, corrupt(film, "overlay", 3, np.random.default_rng(7)))


@pytest.mark.parametrize("name", ["rotation", "shift", "crop"])
def test_boxes_follow_geometric_corruptions(name):
    """A bright square moved by the corruption lies inside its box mapped by the same affine."""
    film = np.zeros((80, 80), np.float32)
    film[20:30, 50:60] = 1.0
    out = corrupt(film, name, 3)
    (x, y, w, h), = map_boxes(np.array([[50, 20, 10, 10]]), affine(name, 3, film.shape))
    ys, xs = np.nonzero(out > 0.5)
    assert x - 1 <= xs.min() and xs.max() <= x + w + 1 and y - 1 <= ys.min() and ys.max() <= y + h + 1


def test_unknown_corruption_or_severity_is_refused():
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(_film(), "sepia", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(_film(), "blur", 6)
