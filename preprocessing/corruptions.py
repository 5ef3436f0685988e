"""Corruptions that happen to radiographs, as pure numpy functions at five severities.

Each corruption maps a float32 image ``[H, W]`` in [0, 1] (display convention, as
``Radiograph.pixels``) to a new float32 ``[H, W]`` image in [0, 1]; the input is never modified.
Severities run 1 (mild) to 5 (severe). Sizes (blur sigma, shift, marker size) are fractions of the
image side, so a severity means the same at 96 px as at 2,000 px. The random ones take a
``numpy.random.Generator``, so a run is reproducible.

Geometric corruptions (rotation, shift, crop) also move what is on the film: :func:`affine` gives
their ``2 x 3`` pixel map, with which box annotations are moved the same way (``map_boxes``).

Used by ``mmdx robustness`` (:mod:`multimodal.robustness`), in the manner of Hendrycks &
Dietterich's ImageNet-C, with radiograph-specific choices: quantum (Poisson) noise, lower bit depth,
JPEG 2000 as PACS archives store it, burned-in text and side markers, cropped collimation.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Corruption:
    """One corruption: ``apply(image, severity, rng) -> image``; ``levels`` says what each severity
    means in its own units (for tables); ``geometric`` when it moves anatomy (see :func:`affine`)."""

    name: str
    apply: Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
    levels: tuple
    unit: str
    geometric: bool = False


def _level(levels: tuple, severity: int):
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return levels[severity - 1]


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


GAUSSIAN_SIGMA = (0.02, 0.04, 0.06, 0.09, 0.12)


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive white noise of standard deviation ``GAUSSIAN_SIGMA`` (intensity units)."""
    return _finish(image + rng.normal(0.0, _level(GAUSSIAN_SIGMA, severity), image.shape))


POISSON_PHOTONS = (500, 200, 100, 50, 25)


def poisson_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Quantum noise of a low-dose exposure: counts ~ Poisson(intensity x photons), rescaled."""
    photons = _level(POISSON_PHOTONS, severity)
    return _finish(rng.poisson(np.clip(image, 0, 1) * photons) / photons)


BLUR_SIGMA = (0.004, 0.008, 0.012, 0.018, 0.025)


def blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (motion, a soft detector), sigma as a fraction of the longer side."""
    sigma = max(_level(BLUR_SIGMA, severity) * max(image.shape), 0.3)
    return _finish(cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigmaX=sigma))


CONTRAST_FACTOR = (0.75, 0.6, 0.45, 0.3, 0.2)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Contrast reduced around the image mean by ``CONTRAST_FACTOR`` (a flat, over-windowed film)."""
    mean = float(image.mean())
    return _finish((image - mean) * _level(CONTRAST_FACTOR, severity) + mean)


GAMMA = (0.8, 1.25, 0.6, 1.6, 2.2)


def gamma(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A different display curve: ``image ** GAMMA`` (alternately brighter and darker, further out)."""
    return _finish(np.power(np.clip(image, 0, 1), _level(GAMMA, severity)))


BIT_DEPTH = (6, 5, 4, 3, 2)


def bit_depth(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Quantised to ``BIT_DEPTH`` bits (2**bits grey levels), as a low-bit export would store it."""
    levels = 2 ** _level(BIT_DEPTH, severity) - 1
    return _finish(np.round(np.clip(image, 0, 1) * levels) / levels)


JPEG_QUALITY = (50, 30, 20, 10, 5)


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """8-bit baseline JPEG re-compression at ``JPEG_QUALITY`` (OpenCV's libjpeg)."""
    quality = _level(JPEG_QUALITY, severity)
    return _codec(image, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality])


J2K_RATIO = (8, 16, 24, 32, 48)


def jpeg2000(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Lossy (9/7) JPEG 2000 re-compression of 8-bit data at ``J2K_RATIO``:1 (Pillow's OpenJPEG, a bare
    codestream). Ratios stop at 48: a codestream keeps ~180 bytes of headers, which at a 96-px model
    input is already 1:50, so higher ratios would all give the same image there."""
    from PIL import Image

    buffer = io.BytesIO()
    data = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(data).save(buffer, format="JPEG2000", irreversible=True, quality_mode="rates",
                               quality_layers=[_level(J2K_RATIO, severity)], no_jp2=True)
    return _finish(np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32) / 255.0)


def _codec(image: np.ndarray, ext: str, params: list[int]) -> np.ndarray:
    data = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    ok, buffer = cv2.imencode(ext, data, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {ext}")
    return _finish(cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0)


RESAMPLE_FACTOR = (0.75, 0.5, 0.35, 0.25, 0.15)


def resample(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Down-sampled by ``RESAMPLE_FACTOR`` (area) and back up (bilinear): a thumbnail-resolution film."""
    h, w = image.shape
    factor = _level(RESAMPLE_FACTOR, severity)
    small = cv2.resize(image.astype(np.float32), (max(2, round(w * factor)), max(2, round(h * factor))),
                       interpolation=cv2.INTER_AREA)
    return _finish(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))


ROTATION_DEG = (2.0, 4.0, 6.0, 8.0, 10.0)
SHIFT_FRACTION = (0.02, 0.04, 0.06, 0.08, 0.10)
CROP_FRACTION = (0.04, 0.08, 0.12, 0.16, 0.20)


def affine(name: str, severity: int, shape: tuple[int, int]) -> np.ndarray:
    """The ``2 x 3`` pixel map (x, y) -> (x', y') of a geometric corruption at ``severity`` on ``shape``.

    ``rotation`` turns about the centre (counter-clockwise on screen), ``shift`` moves right and
    down, ``crop`` keeps the centre ``1 - 2 x fraction`` of each side and scales it back to full size.
    """
    h, w = shape
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    if name == "rotation":
        return cv2.getRotationMatrix2D(centre, _level(ROTATION_DEG, severity), 1.0)
    if name == "shift":
        f = _level(SHIFT_FRACTION, severity)
        return np.array([[1.0, 0.0, f * w], [0.0, 1.0, f * h]])
    if name == "crop":
        scale = 1.0 / (1.0 - 2.0 * _level(CROP_FRACTION, severity))
        return cv2.getRotationMatrix2D(centre, 0.0, scale)
    raise ValueError(f"{name!r} is not a geometric corruption")


def _warp(name: str) -> Callable[[np.ndarray, int, np.random.Generator], np.ndarray]:
    def warp(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
        # Uncovered borders are black, as outside a collimated or shifted exposure.
        h, w = image.shape
        return _finish(cv2.warpAffine(image.astype(np.float32), affine(name, severity, (h, w)), (w, h),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0))

    warp.__doc__ = f"The {name} of :func:`affine`, borders black."
    return warp


def map_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 4]`` xywh mapped through a ``2 x 3`` affine: the axis-aligned box around the moved corners."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
    corners = np.stack([np.stack([x, y, np.ones_like(x)], -1) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))], 1)
    moved = corners @ np.asarray(matrix, dtype=np.float64).T  # [N, 4, 2]
    low, high = moved.min(1), moved.max(1)
    return np.concatenate([low, high - low], axis=1)


MARKER_SCALE = (0.5, 0.75, 1.0, 1.3, 1.6)
MARKER_TEXTS = ("L", "PORTABLE", "AP SUPINE", "R", "ICU 2")


def overlay(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Burned-in annotations: ``severity`` white labels (side marker, "PORTABLE", ...) at random
    places, text height ``MARKER_SCALE x 6 %`` of the side, plus a solid marker square."""
    h, w = image.shape
    ink = np.zeros((h, w), np.uint8)  # OpenCV draws text on 8-bit images only
    scale = _level(MARKER_SCALE, severity) * 0.06 * min(h, w) / 22.0  # Hershey simplex is ~22 px high at scale 1
    thickness = max(1, round(scale * 2))
    for text in MARKER_TEXTS[:severity]:
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x = int(rng.integers(0, max(1, w - tw)))
        y = int(rng.integers(th, max(th + 1, h)))
        cv2.putText(ink, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    side = max(2, round(0.03 * _level(MARKER_SCALE, severity) * min(h, w)))
    x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
    ink[y:y + side, x:x + side] = 255
    return _finish(np.maximum(image, ink.astype(np.float32) / 255.0))


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("gaussian_noise", gaussian_noise, GAUSSIAN_SIGMA, "sigma"),
    Corruption("poisson_noise", poisson_noise, POISSON_PHOTONS, "photons"),
    Corruption("blur", blur, BLUR_SIGMA, "sigma / side"),
    Corruption("contrast", contrast, CONTRAST_FACTOR, "factor"),
    Corruption("gamma", gamma, GAMMA, "gamma"),
    Corruption("bit_depth", bit_depth, BIT_DEPTH, "bits"),
    Corruption("jpeg", jpeg, JPEG_QUALITY, "quality"),
    Corruption("jpeg2000", jpeg2000, J2K_RATIO, "ratio"),
    Corruption("resample", resample, RESAMPLE_FACTOR, "factor"),
    Corruption("rotation", _warp("rotation"), ROTATION_DEG, "degrees", geometric=True),
    Corruption("shift", _warp("shift"), SHIFT_FRACTION, "fraction", geometric=True),
    Corruption("overlay", overlay, MARKER_SCALE, "marker scale"),
    Corruption("crop", _warp("crop"), CROP_FRACTION, "fraction per side", geometric=True),
)}
"""Every corruption by name, in table order."""


def corrupt(image: np.ndarray, name: str, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``CORRUPTIONS[name]`` at ``severity`` on ``image [H, W]`` in [0, 1] → float32 ``[H, W]`` in [0, 1]."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {list(CORRUPTIONS)}")
    return CORRUPTIONS[name].apply(np.asarray(image, dtype=np.float32), severity, rng or np.random.default_rng(0))
