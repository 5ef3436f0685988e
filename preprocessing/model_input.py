"""What a model sees of one image: the read path shared by training, evaluation and scoring.

:func:`read_for_model` reads a file (or Dataset) at the resolution the letterbox needs, and
:func:`model_view` letterboxes and normalises it; the training data set
(:class:`multimodal.data.dataset.StudyDataset`, through the MONAI ``Letterboxd`` +
``NormalizeIntensityd`` pipeline, which calls the same :func:`~preprocessing.letterbox.letterbox`)
and batch scoring (:mod:`multimodal.inference.prepare`) thus feed a model the same
``pixel_values`` for the same file. numpy, OpenCV and the readers only: decode worker processes
import this without torch.
"""

from __future__ import annotations

import os

import numpy as np
from pydicom import Dataset

from preprocessing.dicom import read_radiograph
from preprocessing.letterbox import LetterboxGeometry, geometry_for, letterbox, normalize
from preprocessing.radiograph import Radiograph

# The letterbox scales the long side to the model's size, so that is the side a reduced-resolution
# (JPEG 2000) decode and the reader's shrink must keep at or above it.
MODEL_FIT = "long"


def read_for_model(src: str | os.PathLike[str] | Dataset, image_size: int) -> Radiograph:
    """``read_radiograph(src, target_size=image_size, fit="long")``: the pixels a model of
    ``image_size`` needs, no more (raises the reader's ImageReadError family)."""
    return read_radiograph(src, target_size=image_size, fit=MODEL_FIT)


def model_view(radiograph: Radiograph, image_size: int) -> tuple[np.ndarray, LetterboxGeometry]:
    """Letterboxed, normalised float32 ``[S, S]`` model input of a radiograph and its geometry
    (boxes in the file's pixels map through it; see :func:`~preprocessing.letterbox.geometry_for`)."""
    square, _ = letterbox(radiograph.pixels, image_size)
    return normalize(square).astype(np.float32, copy=False), geometry_for(radiograph, image_size)
