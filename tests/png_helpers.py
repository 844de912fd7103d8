"""Checks that a PNG is real: its size, and that it is not a blank page."""

from __future__ import annotations

import io
import struct

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_nontrivial_png(data: bytes, min_width: int = 400, min_height: int = 250) -> None:
    from matplotlib.image import imread

    width, height = png_size(data)
    assert width >= min_width and height >= min_height, (width, height)
    pixels = imread(io.BytesIO(data), format="png")
    assert pixels.shape[:2] == (height, width)
    rgb = np.round(pixels[..., :3] * 255).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours = np.unique(packed)
    assert len(colours) > 20, f"only {len(colours)} distinct colours: a blank image?"
    # not just a white page with a few marks: at least 1% of pixels are clearly not white
    assert np.mean(np.any(pixels[..., :3] < 0.9, axis=-1)) > 0.01
