"""Image grids as PNG (Pillow)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
  """f32[n, h, w, c] in [-1, 1] -> u8[n, h, w, c] (values outside are clipped)."""
  return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int, pad: int = 2) -> np.ndarray:
  """Tiles u8[n, h, w, c] row-major into u8[rows*(h+pad)+pad, columns*(w+pad)+pad, c].

  Raises:
    ValueError: if ``images`` is not 4-D or ``columns`` < 1.
  """
  if images.ndim != 4 or columns < 1:
    raise ValueError(f"expected u8[n, h, w, c] and columns >= 1, got shape {images.shape}, columns={columns}")
  n, h, w, c = images.shape
  rows = -(-n // columns)
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = image
  return grid


def save_png(path: str, grid: np.ndarray) -> None:
  """Writes u8[H, W, 1 or 3] as a PNG, creating the folder; atomic (a kill never leaves half a file)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp"
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(tmp, format="PNG")
  os.replace(tmp, path)


def interleave_rows(top: np.ndarray, bottom: np.ndarray, columns: int) -> np.ndarray:
  """Alternates rows of ``columns`` images: top row, bottom row, ... (inputs above outputs)."""
  n = min(len(top), len(bottom)) // columns * columns
  t = top[:n].reshape(-1, columns, *top.shape[1:])
  b = bottom[:n].reshape(-1, columns, *bottom.shape[1:])
  return np.stack([t, b], axis=1).reshape(-1, *top.shape[1:])
