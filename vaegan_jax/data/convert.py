"""One image of any common file or array form to the square u8 image a dataset stores.

Used when preparing a folder of images (``data.name="folder"``, ``folder.py``) and a tfds
catalog dataset (``data.name="tfds:<name>"``, ``catalog.py``), and by the Python API to bring
a user's image to the model's input (``vaegan_jax.api``): the same steps everywhere, so an
image seen at training time and one given later are made alike. Decoding and resampling are
Pillow's.
"""

from __future__ import annotations

import collections
import dataclasses

import ml_collections
import numpy as np
from PIL import Image


class ImageError(ValueError):
  """One image cannot be used; the message names it, says why and how to fix it."""


@dataclasses.dataclass(frozen=True)
class ImageSpec:
  """How source images become dataset images.

  Attributes:
    size: side of the square output in pixels (``data.image_size``).
    channels: 3 (RGB) or 1 (grey) (``data.channels``).
    crop: (left, top, right, bottom) box in source pixels, or () for the centre square
      (``data.crop``).
    upscale: allow sources smaller than ``size`` after cropping (``data.upscale``).
  """

  size: int
  channels: int
  crop: tuple[int, ...] = ()
  upscale: bool = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "ImageSpec":
    return cls(int(config.data.image_size), int(config.data.channels), tuple(int(v) for v in config.data.crop),
               bool(config.data.upscale))


# Modes converted on the way (counted, and reported once per preparation by the caller).
_CONVERTED = {"P": "palette", "PA": "palette", "RGBA": "RGBA", "LA": "grey + alpha", "CMYK": "CMYK",
              "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "32-bit integer", "F": "float",
              "1": "1-bit", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}


def _to_rgb_or_grey(image: Image.Image, channels: int) -> Image.Image:
  """Pillow image of any mode to "RGB" or "L"; alpha is composited onto white, 16/32-bit
  integers are scaled to 8 bits (65535 -> 255)."""
  if image.mode in ("I;16", "I;16B", "I;16L", "I"):
    # In the source's own width (2 bytes a pixel for 16-bit, 4 for 32-bit), never int64:
    # x * 255 // 65535 == x // 257 for 0 <= x <= 65535.
    wide = np.asarray(image)
    if image.mode.startswith("I;16"):
      narrow = wide // 257                       # uint16 in, uint16 out
    elif wide.max(initial=0) > 255:
      narrow = np.clip(wide, 0, 65535) // 257    # int32
    else:
      narrow = np.clip(wide, 0, 255)
    image = Image.fromarray(narrow.astype(np.uint8), "L")
  elif image.mode == "F":   # floats: [0, 1] if they fit, else taken as 0..255
    values = np.asarray(image, np.float64)
    scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
    image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), "L")
  if image.mode in ("P", "PA"):
    image = image.convert("RGBA")
  if image.mode in ("RGBA", "LA"):
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, image.convert("RGBA"))
  return image.convert("RGB" if channels == 3 else "L")


def square(image: Image.Image, spec: ImageSpec, name: str, notes: collections.Counter | None = None) -> np.ndarray:
  """A decoded Pillow image as the dataset stores it.

  Steps: mode to RGB or grey (palette, alpha, CMYK, 16-bit and other modes converted; each
  conversion counted in ``notes`` by kind); crop to ``spec.crop`` or the centre square; resize
  to ``spec.size`` with Pillow's Lanczos filter, which is antialiased when shrinking (its
  support widens with the scale), using only pixels inside the crop.

  Args:
    image: any Pillow image (fully loaded or lazily opened).
    spec: the dataset's ``ImageSpec``.
    name: the file or example the image came from, for error messages.
    notes: a Counter that receives one count per conversion kind, or None.

  Returns:
    u8[size, size, channels].

  Raises:
    ImageError: the crop box lies outside the image, or the cropped image is smaller than
      ``spec.size`` and ``spec.upscale`` is off.
  """
  if image.mode in _CONVERTED and notes is not None:
    notes[_CONVERTED[image.mode]] += 1
  image = _to_rgb_or_grey(image, spec.channels)
  width, height = image.size
  if spec.crop:
    left, top, right, bottom = spec.crop
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
      raise ImageError(f"{name}: data.crop={spec.crop} lies outside the {width}x{height} image; "
                       "set --config.data.crop to a box inside every image, or () for the centre square")
  else:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    right, bottom = left + side, top + side
  if min(right - left, bottom - top) < spec.size and not spec.upscale:
    raise ImageError(f"{name}: the {'crop' if spec.crop else 'centre square'} is {right - left}x{bottom - top} "
                     f"pixels, smaller than data.image_size={spec.size}; set --config.data.upscale=True to "
                     "enlarge such images, or a smaller --config.data.image_size")
  image = image.crop((left, top, right, bottom)).resize((spec.size, spec.size), Image.Resampling.LANCZOS)
  out = np.asarray(image, dtype=np.uint8)
  return out.reshape(spec.size, spec.size, spec.channels)


def from_array(array: np.ndarray, spec: ImageSpec, name: str, notes: collections.Counter | None = None) -> np.ndarray:
  """``square`` for an image given as an array: u8 or u16 [h, w], [h, w, 1], [h, w, 3] or [h, w, 4]
  (u16 is scaled to 8 bits, 65535 -> 255; 4 channels are RGBA).

  Raises:
    ImageError: another shape or dtype, or as ``square``.
  """
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.dtype == np.uint16:
    if notes is not None:
      notes["16-bit"] += 1
    array = (array.astype(np.uint32) * 255 // 65535).astype(np.uint8)
  modes = {1: "L", 3: "RGB", 4: "RGBA"}
  channels = 1 if array.ndim == 2 else array.shape[-1] if array.ndim == 3 else 0
  if array.dtype != np.uint8 or channels not in modes:
    raise ImageError(f"{name}: an image array must be u8 (or u16) [h, w], [h, w, 1], [h, w, 3] or [h, w, 4]; "
                     f"got {array.dtype}{list(array.shape)}")
  return square(Image.fromarray(array, modes[channels]), spec, name, notes)
