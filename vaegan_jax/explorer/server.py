"""The latent-space explorer's web server: one page and a small JSON API over ``vaegan_jax.load``.

Built on the standard library's ``http.server`` (a threading server; every model call holds
one lock, so requests take turns on the device) and Pillow; it needs no web framework. The
page (``page.html``) is plain HTML and JavaScript with no outside resources, so it works
offline. The server reads nothing from disk after start but the page itself: it never maps
a URL to a file.

API (all JSON; images are ``data:image/png;base64`` URLs of the model's own resolution):

  GET  /api/info                 model, directions (sliders), test image count, features
  GET  /api/test/<i>             test image i: image, reconstruction, code, slider starts
  GET  /api/sample?seed=N        a prior draw: its decode, code, slider starts
  POST /api/upload               body: an image file (<= max_upload_bytes); as /api/test
  POST /api/decode               {"code", "moves", "other", "blend", "part"} -> {"image"}

``moves`` maps direction ids to slider displacements (``directions.edit``); ``other`` is
``{"test": j}`` or ``{"seed": s}``: the code to blend towards (a test image's, or for
``part == "content"`` on ML-VAE, its group's accumulated content; or a prior draw's).
Errors answer ``{"error": message}`` with status 400, 404 or 413.
"""

from __future__ import annotations

import base64
import http.server
import importlib.resources
import io
import json
import re
import threading
import time
import urllib.parse

import numpy as np
from PIL import Image

from vaegan_jax.data import convert
from vaegan_jax.explorer import directions as directions_lib

MAX_UPLOAD_BYTES = 8 * 1024 * 1024      # an upload larger than this is refused (413)
MAX_UPLOAD_PIXELS = 40_000_000          # decompression-bomb guard, checked before decoding
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
MAX_JSON_BYTES = 1024 * 1024
_MAX_DRAIN_BYTES = 64 * 1024 * 1024     # a refused body up to this size is read and dropped; larger: cut off
NUM_TEST_IMAGES = 500                   # test images offered (and the codes the PCs come from)
PRIOR_DRAWS = 1000                      # without an encoder: the prior draws the PCs come from
# Headless Chromium on a machine without network (tests, docs screenshots): no background
# connections, no sandbox (CI runs as root), no GPU.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class RequestError(Exception):
  """A bad request; ``status`` is the HTTP status to answer with."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


def png_data_url(image: np.ndarray) -> str:
  """u8[h, w, c] (c = 1 or 3) -> a ``data:image/png;base64,...`` URL (lossless)."""
  image = np.asarray(image)
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  buffer = io.BytesIO()
  pil.save(buffer, format="PNG")
  return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def read_upload(body: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
  """Decodes an uploaded image file safely: one of ``UPLOAD_FORMATS``, at most ``max_pixels``
  pixels (checked from the header, before any pixel is decoded); the first frame of an
  animation.

  Raises:
    RequestError: not an image, another format, too many pixels, or truncated.
  """
  try:
    image = Image.open(io.BytesIO(body), formats=UPLOAD_FORMATS)
  except Image.DecompressionBombError as e:
    raise RequestError(f"the upload has too many pixels ({e})", 413) from e
  except (OSError, ValueError) as e:
    raise RequestError(f"the upload is not an image in one of {', '.join(UPLOAD_FORMATS)} ({e})") from e
  width, height = image.size
  if width * height > max_pixels:
    raise RequestError(f"the upload is {width} x {height} pixels; at most {max_pixels} are accepted", 413)
  try:
    image.load()
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise RequestError(f"the upload cannot be decoded: {e}") from e
  return image


class Explorer:
  """The explorer's state and its answers, independent of HTTP (tests call it directly).

  Args:
    model: a ``vaegan_jax.Model``.
    test_images: u8[n, h, w, c], the images offered (the first of the eval split).
    groups: i64[n] or None: each test image's group (ML-VAE: digit or identity).
    seed: the seed of the prior draws standing in for codes on a model without an encoder.
  """

  def __init__(self, model, test_images: np.ndarray, groups: np.ndarray | None = None, seed: int = 0,
               notice: str = ""):
    self.model = model
    self.test_images = np.asarray(test_images)
    self.groups = None if groups is None else np.asarray(groups)
    self.lock = threading.Lock()
    self.has_encoder = model.method != "gan"
    self.codes = model.encode(self.test_images) if self.has_encoder and len(self.test_images) else None
    notices = [notice] if notice else []
    found: list[directions_lib.Direction] = []
    if model.method in ("vaegan", "vae") and model.attribute_names:
      try:
        found += directions_lib.attribute_directions(model.attribute_vectors())
      except ValueError as e:   # no training images here and none saved with the model
        notices.append(f"no attribute sliders: {e}")
    if model.method == "ccvae":
      locations = model.label_locations()
      found += directions_lib.label_block_directions(list(model.config.ccvae.labels), locations["loc_false"],
                                                     locations["loc_true"], model.latent_dim)
    of_tests = self.codes is not None and len(self.codes) >= 2
    reference = self.codes if of_tests else model.prior_codes(PRIOR_DRAWS, seed)
    found += directions_lib.principal_components(
        reference, group="principal component" + ("" if of_tests else " (of prior draws)"))
    self.notice = "; ".join(notices)
    self.directions = {d.id: d for d in found}
    self.content_mask = None
    if model.method == "mlvae":
      self.content_mask = np.arange(model.latent_dim) >= model.config.mlvae.style_dim
    self._group_content: dict[int, np.ndarray] = {}

  @classmethod
  def from_model(cls, model, num_test: int = NUM_TEST_IMAGES) -> "Explorer":
    """An explorer of ``model`` offering the first ``num_test`` images of its eval split
    (grouped by ``mlvae.group_by`` for ML-VAE).

    Without the dataset (``model.data_available`` False: a model folder, or a workdir whose
    data is missing here) no test image is offered: the page starts from prior samples and
    uploads, and says why.

    Raises:
      ValueError: fewer than two test images.
    """
    from vaegan_jax import data  # pylint: disable=import-outside-toplevel
    from vaegan_jax.data import groups as groups_lib  # pylint: disable=import-outside-toplevel
    if not model.data_available:
      return cls(model, np.zeros((0, *model.image_shape), np.uint8),
                 notice=f"no test images: {model.unavailable}; draw prior samples or upload an image")
    test = data.split_arrays(model.config, model.config.data.eval_split, num_test)
    if len(test["image"]) < 2:
      raise ValueError(f"the eval split {model.config.data.eval_split!r} has {len(test['image'])} images; the "
                       "explorer needs at least 2")
    groups = None
    if model.method == "mlvae":
      groups = groups_lib.group_values(test, model.config.mlvae.group_by, model.config.data.name)
    return cls(model, test["image"], groups)

  # -- answers ------------------------------------------------------------------------------

  def info(self) -> dict:
    m = self.model
    return {"model": repr(m), "method": m.method, "step": m.step, "image_shape": list(m.image_shape),
            "latent_dim": m.latent_dim, "num_test": len(self.test_images), "has_encoder": self.has_encoder,
            "content_part": self.content_mask is not None, "notice": self.notice,
            "directions": [d.describe() for d in self.directions.values()]}

  def _answer(self, code: np.ndarray, image: np.ndarray | None) -> dict:
    with self.lock:
      reconstruction = self.model.decode(code)[0]
    return {"code": [float(v) for v in code], "image": None if image is None else png_data_url(image),
            "reconstruction": png_data_url(reconstruction),
            "starts": {k: d.start(code) for k, d in self.directions.items()}}

  def test(self, index: int) -> dict:
    """Test image ``index``: the image, its reconstruction, its code and the sliders' starts.

    Raises:
      RequestError (404): an index outside [0, num_test).
    """
    if not 0 <= index < len(self.test_images):
      raise RequestError(f"test image {index} does not exist; there are {len(self.test_images)} (0 .. "
                         f"{len(self.test_images) - 1})", 404)
    if not self.has_encoder:
      raise RequestError(f"a {self.model.method!r} model has no encoder: draw prior samples instead")
    answer = self._answer(self.codes[index], self.test_images[index])
    if self.groups is not None:
      answer["group"] = int(self.groups[index])
    return answer

  def upload(self, body: bytes) -> dict:
    """An uploaded image file, made as the dataset's images were (``Model.prepare``).

    Raises:
      RequestError: see ``read_upload``; an image too small for the dataset (400); no encoder.
    """
    if not self.has_encoder:
      raise RequestError(f"a {self.model.method!r} model has no encoder to take an uploaded image")
    pil = read_upload(body)
    try:
      image = self.model.prepare(pil)
    except convert.ImageError as e:
      raise RequestError(str(e)) from e
    with self.lock:
      code = self.model.encode(image)[0]
    return self._answer(code, image)

  def sample(self, seed: int) -> dict:
    """A prior draw (the model's prior, as ``Model.sample``): its decode, code and starts."""
    return self._answer(self.model.prior_codes(1, seed)[0], None)

  def _other(self, other: dict, part: str) -> np.ndarray:
    if "seed" in other:
      return self.model.prior_codes(1, int(other["seed"]))[0]
    if "test" in other:
      j = int(other["test"])
      if not 0 <= j < len(self.test_images) or not self.has_encoder:
        raise RequestError(f"cannot blend towards test image {j}: there are {len(self.test_images)}"
                           + ("" if self.has_encoder else " and no encoder"), 404)
      if part == "content" and self.groups is not None:
        return self._content(int(self.groups[j]))
      return self.codes[j]
    raise RequestError(f"'other' must be {{\"test\": j}} or {{\"seed\": s}}; got {other!r}")

  def _content(self, group: int) -> np.ndarray:
    """ML-VAE: a code whose content part is the accumulated content of ``group``'s test images."""
    if group not in self._group_content:
      members = self.test_images[self.groups == group]
      code = np.zeros(self.model.latent_dim, np.float32)
      with self.lock:
        code[self.content_mask] = self.model.group_content(members)
      self._group_content[group] = code
    return self._group_content[group]

  def decode(self, request: dict) -> dict:
    """Decodes an edited code (``directions.edit``); see the module docstring for the fields.

    Raises:
      RequestError: a malformed request (a code of another size, an unknown direction, a
        non-finite number, a bad ``other`` or ``part``).
    """
    try:
      code = np.asarray(request["code"], np.float32)
      moves = {str(k): float(v) for k, v in (request.get("moves") or {}).items()}
      blend = float(request.get("blend") or 0.0)
    except (KeyError, TypeError, ValueError) as e:
      raise RequestError(f"a decode request needs 'code' (a list of {self.model.latent_dim} numbers) and "
                         f"optionally 'moves' ({{direction id: number}}) and 'blend' (0 .. 1): {e}") from e
    if code.shape != (self.model.latent_dim,) or not np.all(np.isfinite(code)):
      raise RequestError(f"'code' must be {self.model.latent_dim} finite numbers; got shape {list(code.shape)}")
    part = request.get("part") or "all"
    if part not in ("all", "content") or (part == "content" and self.content_mask is None):
      raise RequestError(f"'part' must be 'all'{' or content' if self.content_mask is not None else ''}; "
                         f"got {part!r}")
    other = self._other(request["other"], part) if request.get("other") and blend else None
    try:
      edited = directions_lib.edit(code, self.directions, moves, other, blend,
                                   self.content_mask if part == "content" else None)
    except (KeyError, ValueError) as e:
      raise RequestError(str(e).strip('"')) from e
    start = time.perf_counter()
    with self.lock:
      image = self.model.decode(edited)[0]
    decode_ms = 1000 * (time.perf_counter() - start)
    return {"image": png_data_url(image), "decode_ms": round(decode_ms, 2)}


def page() -> bytes:
  """The explorer's page (``page.html``, shipped with the package)."""
  return importlib.resources.files("vaegan_jax.explorer").joinpath("page.html").read_bytes()


_TEST = re.compile(r"^/api/test/(\d+)$")


def make_handler(explorer: Explorer, max_upload_bytes: int = MAX_UPLOAD_BYTES, quiet: bool = True):
  """A ``BaseHTTPRequestHandler`` class answering for ``explorer``."""
  page_bytes = page()

  class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "vaegan_jax-explore"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
      if not quiet:
        super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
      self.send_response(status)
      self.send_header("Content-Type", content_type)
      self.send_header("Content-Length", str(len(body)))
      self.send_header("Cache-Control", "no-store")
      self.send_header("X-Content-Type-Options", "nosniff")
      self.end_headers()
      self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
      self._send(status, json.dumps(payload).encode(), "application/json")

    def _body(self, limit: int) -> bytes:
      try:
        length = int(self.headers.get("Content-Length", ""))
      except ValueError as e:
        raise RequestError("a POST needs a Content-Length header", 411) from e
      if length > limit:
        if length <= _MAX_DRAIN_BYTES:   # read and drop it, so that the client gets the answer
          while length > 0:
            chunk = self.rfile.read(min(1 << 20, length))
            if not chunk:
              break
            length -= len(chunk)
        else:
          self.close_connection = True
        raise RequestError(f"the request body is {int(self.headers['Content-Length'])} bytes; at most {limit} are "
                           "accepted", 413)
      return self.rfile.read(length)

    def _answer(self, fn) -> None:
      try:
        self._json(200, fn())
      except RequestError as e:
        if e.status == 411:
          self.close_connection = True   # an unread body must not be taken for the next request
        self._json(e.status, {"error": str(e)})

    def do_GET(self):  # noqa: N802 (http.server's naming)
      url = urllib.parse.urlsplit(self.path)
      if url.path in ("/", "/index.html"):
        self._send(200, page_bytes, "text/html; charset=utf-8")
      elif url.path == "/api/info":
        self._answer(explorer.info)
      elif url.path == "/api/sample":
        query = urllib.parse.parse_qs(url.query)
        self._answer(lambda: explorer.sample(_int(query.get("seed", ["0"])[0], "seed")))
      elif match := _TEST.match(url.path):
        self._answer(lambda: explorer.test(int(match.group(1))))
      else:
        self._json(404, {"error": f"no such page: {url.path}"})

    def do_POST(self):  # noqa: N802
      path = urllib.parse.urlsplit(self.path).path
      if path == "/api/upload":
        self._answer(lambda: explorer.upload(self._body(max_upload_bytes)))
      elif path == "/api/decode":
        self._answer(lambda: explorer.decode(_json_body(self._body(MAX_JSON_BYTES))))
      else:
        self._json(404, {"error": f"no such endpoint: {path}"})

  return Handler


def _int(text: str, name: str) -> int:
  try:
    return int(text)
  except ValueError as e:
    raise RequestError(f"{name} must be an integer; got {text!r}") from e


def _json_body(body: bytes) -> dict:
  try:
    request = json.loads(body)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise RequestError(f"the request body is not JSON: {e}") from e
  if not isinstance(request, dict):
    raise RequestError("the request body must be a JSON object")
  return request


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000,
                max_upload_bytes: int = MAX_UPLOAD_BYTES, quiet: bool = True) -> http.server.ThreadingHTTPServer:
  """A bound (not yet serving) threading HTTP server; port 0 takes a free port
  (``server.server_address[1]``). Call ``serve_forever()``; ``shutdown()`` stops it.

  Raises:
    OSError: the address is taken or cannot be bound.
  """
  server = http.server.ThreadingHTTPServer((host, port), make_handler(explorer, max_upload_bytes, quiet))
  server.daemon_threads = True
  return server
