"""The report's pictures: each view as a PNG, and each positive observation's heat map as a
transparent PNG laid over the first view by CSS (toggled on the study page).

Heat maps live on the model's square input (after the letterbox); ``SourceImage.square_to_pixels``
maps that square to the stored image. Views are shown in display orientation (what
:func:`preprocessing.dicom.read_radiograph` returns), so a flipped axis is mirrored back here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from multimodal.inference.results import SourceImage
from preprocessing.dicom import read_radiograph
from preprocessing.errors import ImageReadError

VIEW_SIZE = 512  # px, long side of a view's PNG


def write_view(path: str | None, out: Path) -> bool:
    """Write the image at ``path`` as an 8-bit PNG of at most VIEW_SIZE px; False when it cannot be read."""
    if not path:
        return False
    try:
        radiograph = read_radiograph(path, target_size=VIEW_SIZE, fit="long")
    except ImageReadError:
        return False
    image = Image.fromarray((np.clip(radiograph.pixels, 0, 1) * 255).astype(np.uint8))
    image.thumbnail((VIEW_SIZE, VIEW_SIZE))
    image.save(out, compress_level=1)  # fast: thousands of views; size matters less
    return True


def write_overlay(heatmap: np.ndarray, out: Path) -> None:
    """A heat map ``[h, w]`` (probabilities) as an RGBA PNG at its own resolution: "inferno" colours,
    opacity rising with the value. The browser scales it up smoothly over the view (CSS), so the
    file stays a few hundred bytes and the picture claims no detail the model did not give."""
    from matplotlib import colormaps

    value = (heatmap - heatmap.min()) / max(float(heatmap.max() - heatmap.min()), 1e-6)
    rgba = colormaps["inferno"](value)
    rgba[..., 3] = 0.7 * value
    Image.fromarray((rgba * 255).astype(np.uint8), "RGBA").save(out, compress_level=1)


def overlay_box(source: SourceImage) -> dict[str, float] | None:
    """Where the model's square lies on the displayed view, in percent of its width and height
    (``left``, ``top``, ``width``, ``height``); None without geometry."""
    if source.square_to_pixels is None or not source.rows or not source.columns:
        return None
    ax, bx, ay, by = source.square_to_pixels
    # A flipped axis (negative scale) is shown mirrored back: x_display = columns - x_stored.
    left = bx if ax >= 0 else source.columns - bx
    top = by if ay >= 0 else source.rows - by
    return {"left": 100 * left / source.columns, "top": 100 * top / source.rows,
            "width": 100 * abs(ax) / source.columns, "height": 100 * abs(ay) / source.rows}
