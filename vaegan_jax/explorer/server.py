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
import hashlib
import http.server
import importlib.resources
import io
import json
import math
import re
import socket
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
MAX_SEED = 2 ** 32 - 1                  # prior-draw seeds accepted (jax.random.key takes up to 64 bits; the page counts up)
DECODE_SLOTS = 2                        # uploads decoded at a time (each may cost several bytes per source pixel)
DECODE_WAIT_SECONDS = 20                # an upload waiting longer for a slot is refused (503)
MAX_CONNECTIONS = 32                    # open connections served at once; more are answered 503 and closed
SOCKET_TIMEOUT_SECONDS = 30             # a connection silent this long (headers or body) is closed
_MAX_JSON_DEPTH = 8                     # nesting of a decode request's JSON ({"moves": {...}} is 2)
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


_DECODE_SLOTS = threading.BoundedSemaphore(DECODE_SLOTS)


def read_upload(body: bytes, max_pixels: int = MAX_UPLOAD_PIXELS, min_side: int = 0) -> Image.Image:
  """Decodes an uploaded image file safely: one of ``UPLOAD_FORMATS``, at most ``max_pixels``
  pixels (checked from the header, before any pixel is decoded); the first frame of an
  animation. A JPEG is decoded at the smallest of Pillow's draft scales (1/2, 1/4, 1/8) whose
  shorter side is still at least ``min_side`` (what the model needs), so a large photo costs
  a fraction of its full size. Call it inside ``decode_slot()`` where many may arrive at once.

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
  if image.format == "JPEG" and min_side:
    scale = max(1, min(width, height) // min_side)
    image.draft(image.mode, (max(1, width // scale), max(1, height // scale)))
  try:
    image.load()
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise RequestError(f"the upload cannot be decoded: {e}") from e
  return image


class decode_slot:  # pylint: disable=invalid-name  # used as `with decode_slot():`
  """At most ``DECODE_SLOTS`` uploads decode and convert at a time; a request that waits more
  than ``DECODE_WAIT_SECONDS`` for a slot is refused with 503 (try again)."""

  def __enter__(self):
    if not _DECODE_SLOTS.acquire(timeout=DECODE_WAIT_SECONDS):
      raise RequestError(f"{DECODE_SLOTS} uploads are being decoded; try again in a moment", 503)
    return self

  def __exit__(self, *exc):
    _DECODE_SLOTS.release()


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
    with decode_slot():
      pil = read_upload(body, min_side=self.model.image_shape[0])
      try:
        image = self.model.prepare(pil)
      except convert.ImageError as e:
        raise RequestError(str(e)) from e
      finally:
        pil.close()
    with self.lock:
      code = self.model.encode(image)[0]
    return self._answer(code, image)

  def sample(self, seed: int) -> dict:
    """A prior draw (the model's prior, as ``Model.sample``): its decode, code and starts.

    Raises:
      RequestError: a seed that is not an integer in [0, MAX_SEED].
    """
    return self._answer(self.model.prior_codes(1, _whole(seed, "seed", MAX_SEED))[0], None)

  def _other(self, other, part: str) -> np.ndarray:
    if not isinstance(other, dict) or len(other) != 1:
      raise RequestError(f"'other' must be {{\"test\": j}} or {{\"seed\": s}}; got {_shown(other)}")
    if "seed" in other:
      return self.model.prior_codes(1, _whole(other["seed"], "other.seed", MAX_SEED))[0]
    if "test" in other:
      j = _whole(other["test"], "other.test", MAX_SEED)   # then 404 when past the test images
      if not 0 <= j < len(self.test_images) or not self.has_encoder:
        raise RequestError(f"cannot blend towards test image {j}: there are {len(self.test_images)}"
                           + ("" if self.has_encoder else " and no encoder"), 404)
      if part == "content" and self.groups is not None:
        return self._content(int(self.groups[j]))
      return self.codes[j]
    raise RequestError(f"'other' must be {{\"test\": j}} or {{\"seed\": s}}; got {_shown(other)}")

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
    n = self.model.latent_dim
    if "code" not in request:
      raise RequestError(f"a decode request needs 'code' (a list of {n} numbers) and optionally 'moves' "
                         "({direction id: number}), 'blend' (0 .. 1), 'other' and 'part'")
    code = request["code"]
    if not isinstance(code, list) or len(code) != n or not all(_is_number(v) for v in code):
      raise RequestError(f"'code' must be {n} finite numbers; got {_shown(code)}")
    code = np.asarray(code, np.float64)
    moves = request.get("moves") or {}
    if not isinstance(moves, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in moves.items()):
      raise RequestError(f"'moves' must map direction ids to finite numbers; got {_shown(moves)}")
    blend = request.get("blend") or 0.0
    if not _is_number(blend) or not 0.0 <= blend <= 1.0:
      raise RequestError(f"'blend' must be a number in [0, 1]; got {_shown(blend)}")
    with np.errstate(over="ignore"):
      fits = np.all(np.isfinite(code.astype(np.float32)))
    if not fits:
      raise RequestError(f"'code' must be {n} finite numbers in float32 (|v| < 3.4e38); got {_shown(request['code'])}")
    code = code.astype(np.float32)
    moves = {k: float(v) for k, v in moves.items()}
    part = request.get("part") or "all"
    if part not in ("all", "content") or (part == "content" and self.content_mask is None):
      raise RequestError(f"'part' must be 'all'{' or content' if self.content_mask is not None else ''}; "
                         f"got {part!r}")
    other = self._other(request["other"], part) if request.get("other") and blend else None
    try:
      with np.errstate(over="ignore", invalid="ignore"):   # checked just below
        edited = directions_lib.edit(code, self.directions, moves, other, blend,
                                     self.content_mask if part == "content" else None)
        finite = np.all(np.isfinite(np.asarray(edited, np.float64).astype(np.float32)))
    except (KeyError, ValueError) as e:
      raise RequestError(str(e).strip('"')) from e
    if not finite:
      raise RequestError("the edited code is not finite in float32: the moves or the blend are too large")
    start = time.perf_counter()
    with self.lock:
      image = self.model.decode(edited)[0]
    decode_ms = 1000 * (time.perf_counter() - start)
    return {"image": png_data_url(image), "decode_ms": round(decode_ms, 2)}


def page() -> bytes:
  """The explorer's page (``page.html``, shipped with the package)."""
  return importlib.resources.files("vaegan_jax.explorer").joinpath("page.html").read_bytes()


_TEST = re.compile(r"^/api/test/(\d+)$")


_UPLOAD_TYPES = ("image/", "application/octet-stream")


def make_handler(explorer: Explorer, max_upload_bytes: int = MAX_UPLOAD_BYTES, quiet: bool = True):
  """A ``BaseHTTPRequestHandler`` class answering for ``explorer``.

  Besides the API: every connection times out after ``SOCKET_TIMEOUT_SECONDS`` of silence;
  on a loopback server (``server.allowed_hosts`` set by ``make_server``) a request whose Host
  header is not this server's loopback name and port is refused (403: DNS rebinding); a
  request whose Origin is not this server's is refused (403: other sites' pages); a POST must
  declare its body (``application/json`` for decode; an image type or
  ``application/octet-stream`` for upload), which browsers cannot send across sites without
  asking first; the page is sent with a strict Content-Security-Policy.
  """
  page_bytes = page()
  policy = content_security_policy(page_bytes)

  class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "vaegan_jax-explore"
    timeout = SOCKET_TIMEOUT_SECONDS

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
      if not quiet:
        super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
      self.send_response(status)
      self.send_header("Content-Type", content_type)
      self.send_header("Content-Length", str(len(body)))
      self.send_header("Cache-Control", "no-store")
      self.send_header("X-Content-Type-Options", "nosniff")
      if content_type.startswith("text/html"):
        self.send_header("Content-Security-Policy", policy)
        self.send_header("X-Frame-Options", "DENY")
      self.end_headers()
      self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
      self._send(status, json.dumps(payload).encode(), "application/json")

    def _body(self, limit: int) -> bytes:
      try:
        length = int(self.headers.get("Content-Length", ""))
      except ValueError as e:
        raise RequestError("a POST needs a Content-Length header", 411) from e
      if length < 0:
        self.close_connection = True
        raise RequestError(f"Content-Length {length} is negative; send the body's size in bytes", 400)
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

    def _refused(self) -> bool:
      """Answers 403 and returns True for a request from outside this server's own page."""
      host = self.headers.get("Host", "")
      allowed = getattr(self.server, "allowed_hosts", None)
      if allowed is not None and host.lower() not in allowed:
        problem = f"Host {_shown(host)} is not this server ({' or '.join(sorted(allowed))})"
      elif (origin := self.headers.get("Origin")) is not None and origin.lower() != f"http://{host}".lower():
        problem = f"Origin {_shown(origin)} is another site; only this server's own page may call it"
      else:
        return False
      self.close_connection = True
      self._json(403, {"error": problem})
      return True

    def _declared(self, *types: str) -> bool:
      kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
      if any(kind == t or (t.endswith("/") and kind.startswith(t)) for t in types):
        return True
      self.close_connection = True   # its body is not read
      self._json(415, {"error": f"Content-Type {_shown(kind)} is not accepted here; send {' or '.join(types)}"})
      return False

    def do_GET(self):  # noqa: N802 (http.server's naming)
      if self._refused():
        return
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
      if self._refused():
        return
      path = urllib.parse.urlsplit(self.path).path
      if path == "/api/upload":
        if self._declared(*_UPLOAD_TYPES):
          self._answer(lambda: explorer.upload(self._body(max_upload_bytes)))
      elif path == "/api/decode":
        if self._declared("application/json"):
          self._answer(lambda: explorer.decode(_json_body(self._body(MAX_JSON_BYTES))))
      else:
        self._json(404, {"error": f"no such endpoint: {path}"})

  return Handler


def _shown(value) -> str:
  """A request value for an error message, cut short (a client's text, never trusted to be small)."""
  text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
  return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value) -> bool:
  """A finite JSON number (not a bool, not a string)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value, name: str, largest: int) -> int:
  """``value`` as an int in [0, largest], else a RequestError naming ``name``."""
  if isinstance(value, str) and value.isdigit() and len(value) <= 20:
    value = int(value)
  if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= largest:
    raise RequestError(f"{name} must be a whole number in [0, {largest}]; got {_shown(value)}")
  return value


def _int(text: str, name: str) -> int:
  return _whole(text, name, MAX_SEED)


def _depth(value, limit: int) -> int:
  """Nesting depth of parsed JSON, stopping once it exceeds ``limit``."""
  depth, level = 0, [value]
  while level and depth <= limit:
    depth += 1
    level = [v for x in level if isinstance(x, (dict, list)) for v in (x.values() if isinstance(x, dict) else x)]
  return depth


def _json_body(body: bytes) -> dict:
  try:
    request = json.loads(body)
  except ValueError as e:   # not JSON, not UTF-8, or an integer of more than 4300 digits
    raise RequestError(f"the request body is not JSON: {_shown(str(e))}") from e
  except RecursionError as e:
    raise RequestError(f"the request body nests deeper than {_MAX_JSON_DEPTH} levels") from e
  if not isinstance(request, dict):
    raise RequestError("the request body must be a JSON object")
  if _depth(request, _MAX_JSON_DEPTH) > _MAX_JSON_DEPTH:
    raise RequestError(f"the request body nests deeper than {_MAX_JSON_DEPTH} levels")
  return request


def content_security_policy(page_bytes: bytes) -> str:
  """The page's Content-Security-Policy: its own inline script and style only (by SHA-256), images
  from ``data:`` URLs, requests to this server; nothing else, no framing, no forms."""
  text = page_bytes.decode("utf-8")
  def hashes(tag):
    return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(m.encode("utf-8")).digest()).decode() + "'"
                    for m in re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S))
  return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; img-src data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class _Server(http.server.ThreadingHTTPServer):
  """The threading server with a cap on open connections: over ``MAX_CONNECTIONS`` a new one
  is answered 503 and closed at once (each holds a thread until it ends or times out)."""

  daemon_threads = True
  allowed_hosts: set[str] | None = None

  def __init__(self, address, handler, family: int):
    self.address_family = family
    self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
    super().__init__(address, handler)

  def process_request(self, request, client_address):
    if not self._connections.acquire(blocking=False):
      try:
        request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      except OSError:
        pass
      self.shutdown_request(request)
      return
    super().process_request(request, client_address)

  def process_request_thread(self, request, client_address):
    try:
      super().process_request_thread(request, client_address)
    finally:
      self._connections.release()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000,
                max_upload_bytes: int = MAX_UPLOAD_BYTES, quiet: bool = True) -> http.server.ThreadingHTTPServer:
  """A bound (not yet serving) threading HTTP server; port 0 takes a free port
  (``server.server_address[1]``). Call ``serve_forever()``; ``shutdown()`` stops it.

  ``host`` may be an IPv4 or IPv6 address or name (``::1`` binds IPv6). On a loopback address
  (``LOOPBACK``) only requests naming it (Host ``127.0.0.1:PORT``, ``localhost:PORT`` or
  ``[::1]:PORT``) are answered.

  Raises:
    OSError: the address is taken or cannot be bound.
  """
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  server = _Server((host, port), make_handler(explorer, max_upload_bytes, quiet), family)
  if host in LOOPBACK:
    bound = server.server_address[1]
    server.allowed_hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}", f"[::1]:{bound}"}
  return server
