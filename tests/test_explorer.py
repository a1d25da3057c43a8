"""The latent-space explorer (explore.py): its directions, its API over HTTP, and the page in a
real headless browser (skipped, with the reason, where no Chromium is installed)."""

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

import vaegan_jax
from vaegan_jax.explorer import directions as dl
from vaegan_jax.explorer import server

CHROMIUM = os.environ.get("VAEGAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _png(url: str) -> np.ndarray:
  assert url.startswith("data:image/png;base64,")
  return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def _as_model_image(a: np.ndarray) -> np.ndarray:
  return a[..., None] if a.ndim == 2 else a


# -- directions: pure functions -------------------------------------------------------------


def test_principal_components_match_the_covariance_eigenvectors_scaled_to_one_std():
  rng = np.random.default_rng(0)
  codes = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 3.0
  found = dl.principal_components(codes, count=4)
  assert [d.id for d in found] == ["pc0", "pc1", "pc2", "pc3"] and all(d.kind == "add" for d in found)
  values, vectors = np.linalg.eigh(np.cov(codes, rowvar=False))       # another way: the covariance
  order = np.argsort(values)[::-1]
  for d, i in zip(found, order):
    np.testing.assert_allclose(np.linalg.norm(d.vector), np.sqrt(values[i]), rtol=1e-4)
    np.testing.assert_allclose(abs(np.dot(d.vector / np.linalg.norm(d.vector), vectors[:, i])), 1.0, atol=1e-4)
  assert len(dl.principal_components(codes[:, :3])) == 3                 # at most the code size
  assert len(dl.principal_components(codes[:3])) == 2                    # at most n - 1 for n codes
  with pytest.raises(ValueError, match="at least two codes"):
    dl.principal_components(codes[:1])


def test_edit_adds_moves_then_blends_on_the_mask():
  rng = np.random.default_rng(1)
  a, b, v = (rng.normal(size=5).astype(np.float32) for _ in range(3))
  ds = {"x": dl.Direction("x", "g", "x", v, -1, 1)}
  np.testing.assert_allclose(dl.edit(a, ds, {"x": 0.5}), a + 0.5 * v, rtol=1e-6)
  np.testing.assert_allclose(dl.edit(a, ds, {}, b, 0.25), 0.75 * a + 0.25 * b, rtol=1e-5)
  mask = np.array([False, False, True, True, True])
  out = dl.edit(a, ds, {}, b, 1.0, mask)
  np.testing.assert_array_equal(out[:2], a[:2])
  np.testing.assert_allclose(out[2:], b[2:], rtol=1e-6)
  with pytest.raises(KeyError, match="unknown direction 'y'"):
    dl.edit(a, ds, {"y": 1.0})
  with pytest.raises(ValueError, match="not a finite number"):
    dl.edit(a, ds, {"x": float("nan")})
  with pytest.raises(ValueError, match="second code"):
    dl.edit(a, ds, {}, None, 0.5)


def test_label_block_sliders_run_between_the_two_prior_locations():
  loc_false = np.array([[-2.0, 0.0], [1.0, 1.0]], np.float32)
  loc_true = np.array([[2.0, 0.0], [3.0, -1.0]], np.float32)
  found = {d.id: d for d in dl.label_block_directions(["Smiling", "Male"], loc_false, loc_true, 6)}
  code = np.array([1.0, 5.0, 2.0, 0.0, 7.0, 7.0], np.float32)    # block 0: z[0:2]; block 1: z[2:4]
  assert found["label_Smiling"].start(code) == pytest.approx(0.75)   # (1 - -2) / 4 along the line
  assert found["label_Male"].start(code) == pytest.approx(0.5)       # (2, 0) is halfway
  # From the start to 1: block 0's component along the line reaches loc_true; the rest stays.
  t0 = found["label_Smiling"].start(code)
  out = dl.edit(code, found, {"label_Smiling": 1.0 - t0})
  np.testing.assert_allclose(out, [2.0, 5.0, 2.0, 0.0, 7.0, 7.0], rtol=1e-6)
  assert found["label_Smiling"].start(out) == pytest.approx(1.0)


# -- the explorer on the smoke run ----------------------------------------------------------


@pytest.fixture(scope="module")
def explorer(smoke_run):
  return server.Explorer.from_model(vaegan_jax.load(str(smoke_run)), num_test=50)


@pytest.fixture(scope="module")
def address(explorer):
  http = server.make_server(explorer, "127.0.0.1", 0)
  thread = threading.Thread(target=http.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{http.server_address[1]}"
  http.shutdown()
  http.server_close()


def _call(url: str, body=None, content_type: str = "application/json"):
  data = json.dumps(body).encode() if isinstance(body, dict) else body
  request = urllib.request.Request(url, data, {"Content-Type": content_type} if data is not None else {})
  try:
    with urllib.request.urlopen(request, timeout=60) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


def test_info_and_test_images_over_http(explorer, address):
  status, info = _call(address + "/api/info")
  assert status == 200 and info["method"] == "vaegan" and info["num_test"] == 50 and info["has_encoder"]
  assert [d["id"] for d in info["directions"]] == [f"pc{i}" for i in range(8)]   # latent 8, no attributes
  status, answer = _call(address + "/api/test/7")
  assert status == 200
  np.testing.assert_array_equal(_as_model_image(_png(answer["image"])), explorer.test_images[7])
  np.testing.assert_allclose(answer["code"], explorer.model.encode(explorer.test_images[7])[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(_as_model_image(_png(answer["reconstruction"])),
                                explorer.model.decode(np.asarray(answer["code"], np.float32))[0])
  assert _call(address + "/api/test/50") == (404, {"error": "test image 50 does not exist; there are 50 (0 .. 49)"})
  status, page = 200, urllib.request.urlopen(address + "/").read()
  assert b"Latent-space explorer" in page and b"http://" not in page and b"https://" not in page  # nothing fetched


def test_decode_applies_slider_moves_and_blends(explorer, address):
  model = explorer.model
  code = explorer.codes[3]
  status, answer = _call(address + "/api/decode", {"code": [float(v) for v in code], "moves": {"pc0": 1.5, "pc2": -2}})
  assert status == 200
  expected = code + 1.5 * explorer.directions["pc0"].vector - 2 * explorer.directions["pc2"].vector
  np.testing.assert_array_equal(_as_model_image(_png(answer["image"])), model.decode(expected)[0])
  # Blend all the way towards test image 9: its reconstruction.
  status, answer = _call(address + "/api/decode", {"code": [float(v) for v in code], "other": {"test": 9}, "blend": 1})
  assert status == 200
  assert np.abs(_as_model_image(_png(answer["image"])).astype(int) - model.reconstruct(explorer.test_images[9])[0]).max() <= 1
  status, answer = _call(address + "/api/sample?seed=4")
  np.testing.assert_array_equal(_as_model_image(_png(answer["reconstruction"])), model.sample(1, seed=4)[0])


@pytest.mark.parametrize("body, status, message", [
    ({"code": [0.0, 1.0]}, 400, "'code' must be 8 finite numbers"),
    ({"moves": {}}, 400, "needs 'code'"),
    ({"code": [0.0] * 8, "moves": {"smile": 1}}, 400, "unknown direction 'smile'"),
    ({"code": [0.0] * 8, "other": {"test": 99}, "blend": 0.5}, 404, "cannot blend towards test image 99"),
    ({"code": [0.0] * 8, "part": "content"}, 400, "'part' must be 'all'"),
    (b"{not json", 400, "not JSON"),
])
def test_bad_decode_requests_are_named(address, body, status, message):
  got_status, answer = _call(address + "/api/decode", body)
  assert got_status == status and message in answer["error"]


def test_uploads_are_prepared_as_the_dataset_and_bad_ones_refused(explorer, address):
  rgb = np.random.default_rng(0).integers(0, 256, (56, 70, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(rgb).save(buffer, format="PNG")
  status, answer = _call(address + "/api/upload", buffer.getvalue(), "application/octet-stream")
  assert status == 200
  prepared = explorer.model.prepare(rgb)
  np.testing.assert_array_equal(_as_model_image(_png(answer["image"])), prepared)
  np.testing.assert_allclose(answer["code"], explorer.model.encode(prepared)[0], rtol=1e-5, atol=1e-6)
  status, answer = _call(address + "/api/upload", b"GIF89a not really", "application/octet-stream")
  assert status == 400 and "not an image" in answer["error"]
  status, answer = _call(address + "/api/upload", b"\0" * (server.MAX_UPLOAD_BYTES + 1), "application/octet-stream")
  assert status == 413 and "at most" in answer["error"]
  small = io.BytesIO()
  Image.fromarray(rgb[:10, :10]).save(small, format="PNG")   # 100 pixels, over a limit of 50
  with pytest.raises(server.RequestError, match="at most 50 are accepted"):
    server.read_upload(small.getvalue(), max_pixels=50)


def test_explore_py_fails_before_serving_on_a_bad_workdir_and_warns_on_another_host(smoke_run, tmp_path):
  from tests.conftest import REPO  # pylint: disable=import-outside-toplevel
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  bad = subprocess.run([sys.executable, str(REPO / "explore.py"), f"--workdir={tmp_path}", "--port=0"],
                       capture_output=True, text=True, env=env, timeout=300)
  assert bad.returncode != 0 and "no checkpoints/ folder" in bad.stderr and "open http" not in bad.stdout
  proc = subprocess.Popen([sys.executable, str(REPO / "explore.py"), f"--workdir={smoke_run}", "--port=0",
                           "--host=0.0.0.0", "--num_test=10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env)
  try:
    lines = []
    for line in proc.stdout:
      lines.append(line)
      if "open http" in line:
        break
    assert "open http://127.0.0.1:" in lines[-1], lines
  finally:
    proc.terminate()
    _, err = proc.communicate(timeout=60)
  assert "WARNING: listening on 0.0.0.0" in err


# -- the page in a real browser -------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
  if not CHROMIUM:
    pytest.skip("no Chromium installed (Debian: apt-get install chromium; or set VAEGAN_CHROMIUM): the page "
                "is not driven in a browser here")
  playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
  with playwright.sync_playwright() as p:
    b = p.chromium.launch(executable_path=CHROMIUM, args=server.CHROMIUM_FLAGS)
    yield b
    b.close()


def test_the_page_follows_a_slider_and_a_blend_as_decode_of_the_expected_code(browser, explorer, address):
  # Playwright's wait_for_function evaluates a string in the page, which the page's own
  # Content-Security-Policy forbids (as it should); the injection test below keeps it on.
  page = browser.new_page(bypass_csp=True)
  page.goto(address + "/")
  page.wait_for_selector("body[data-ready='1']", timeout=60_000)
  shown = _png(page.get_attribute("#edited", "src"))
  code = explorer.codes[0]
  np.testing.assert_array_equal(_as_model_image(shown), explorer.model.decode(code)[0])   # test image 0, unedited
  # Drag PC 1's slider as a person would: a click three quarters along its track.
  slider = page.locator("#s-pc0")
  box = slider.bounding_box()
  page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + box["height"] / 2)
  page.wait_for_function("window.explorer.idle() && Number(document.querySelector('#s-pc0').value) > 0")
  value = float(slider.input_value())
  assert 1.0 < value < 2.0   # three quarters of -3 .. 3
  after = _png(page.get_attribute("#edited", "src"))
  expected = explorer.model.decode(code + np.float32(value) * explorer.directions["pc0"].vector)[0]
  assert not np.array_equal(after, shown)
  np.testing.assert_array_equal(_as_model_image(after), expected)
  assert page.get_attribute("#download", "href") == page.get_attribute("#edited", "src")
  # Blend all the way to test image 4 with the keyboard: pc0's move and then the blend.
  page.fill("#other-index", "4")
  page.locator("#blend").focus()
  page.keyboard.press("End")
  page.wait_for_function("window.explorer.idle() && document.querySelector('#blend').value === '1'")
  blended = _png(page.get_attribute("#edited", "src"))
  np.testing.assert_array_equal(_as_model_image(blended), explorer.model.decode(
      dl.edit(code, explorer.directions, {"pc0": value}, explorer.codes[4], 1.0))[0])
  assert float(page.get_attribute("body", "data-last-round-trip-ms")) > 0
  page.close()


@pytest.mark.parametrize("name", ["ccvae_mnist", "mlvae_mnist"])
def test_label_block_sliders_and_content_blend_on_trained_models(name, method_runs):
  model = vaegan_jax.load(str(method_runs(name)))
  x = np.random.default_rng(0).integers(0, 256, (6, 28, 28, 1), dtype=np.uint8)
  groups = np.array([0, 0, 0, 1, 1, 1])
  explorer = server.Explorer(model, x, groups if model.method == "mlvae" else None)
  code = explorer.codes[0]
  if model.method == "ccvae":
    label, block = model.config.ccvae.labels[1], model.config.ccvae.block_dim
    d = explorer.directions[f"label_{label}"]
    assert d.kind == "between" and d.block == (block, 2 * block)
    answer = explorer.decode({"code": code.tolist(), "moves": {d.id: 1.0 - d.start(code)}})
    edited = dl.edit(code, explorer.directions, {d.id: 1.0 - d.start(code)})
    assert d.start(edited) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_array_equal(_as_model_image(_png(answer["image"])), model.decode(edited)[0])
    loc_true = model.label_locations()["loc_true"][1]
    if block == 1:   # a scalar block lands exactly on the y = 1 location: model.intervene's image
      np.testing.assert_allclose(dl.edit(code, explorer.directions, {d.id: 1.0 - d.start(code)})[1:2], loc_true,
                                 rtol=1e-5, atol=1e-6)
      assert np.abs(_as_model_image(_png(answer["image"])).astype(int)
                    - model.intervene(x[0], label, True)[0]).max() <= 1
  else:
    info = explorer.info()
    assert info["content_part"] and not any(d["id"].startswith(("attr", "label")) for d in info["directions"])
    answer = explorer.decode({"code": code.tolist(), "other": {"test": 4}, "blend": 1.0, "part": "content"})
    style = model.config.mlvae.style_dim
    expected = np.concatenate([code[:style], model.group_content(x[3:])])
    assert np.abs(_as_model_image(_png(answer["image"])).astype(int) - model.decode(expected)[0]).max() <= 1
    with pytest.raises(server.RequestError, match="'part' must be"):
      explorer.decode({"code": code.tolist(), "part": "style"})


def test_a_gan_without_encoder_starts_from_prior_draws(tfds_dir, tmp_path):
  from tests.conftest import load_config  # pylint: disable=import-outside-toplevel
  from vaegan_jax import trainer  # pylint: disable=import-outside-toplevel
  c = load_config("default")
  c.method, c.data.data_dir = "gan", tfds_dir
  trainer.train_and_evaluate(c, str(tmp_path / "gan"))
  model = vaegan_jax.load(str(tmp_path / "gan"))
  explorer = server.Explorer(model, np.zeros((4, 28, 28, 1), np.uint8))
  info = explorer.info()
  assert not info["has_encoder"] and explorer.codes is None
  assert [d["group"] for d in info["directions"]] == ["principal component (of prior draws)"] * 8
  answer = explorer.sample(3)
  np.testing.assert_allclose(answer["code"], model.prior_codes(1, 3)[0], rtol=1e-6)
  np.testing.assert_array_equal(_as_model_image(_png(answer["reconstruction"])), model.sample(1, seed=3)[0])
  blended = explorer.decode({"code": answer["code"], "other": {"seed": 5}, "blend": 0.5, "moves": {"pc1": 1.0}})
  expected = dl.edit(np.asarray(answer["code"], np.float32), explorer.directions, {"pc1": 1.0}, model.prior_codes(1, 5)[0], 0.5)
  np.testing.assert_array_equal(_as_model_image(_png(blended["image"])), model.decode(expected)[0])
  for call in (lambda: explorer.test(0), lambda: explorer.upload(b"")):
    with pytest.raises(server.RequestError, match="no encoder"):
      call()


# -- holes a security read found (issue 38): each test failed before its fix --------------


def _raw(address: str, request: bytes, wait: float = 10.0) -> bytes:
  """Sends raw bytes to the server and returns what it answers within ``wait`` seconds."""
  import socket  # pylint: disable=import-outside-toplevel
  host, port = address.rsplit("/", 1)[-1].rsplit(":", 1)
  with socket.create_connection((host.strip("[]"), int(port)), timeout=wait) as s:
    s.sendall(request)
    chunks = []
    try:
      while chunk := s.recv(65536):
        chunks.append(chunk)
    except TimeoutError:
      pass
  return b"".join(chunks)


def _port(address: str) -> int:
  return int(address.rsplit(":", 1)[1])


def test_a_negative_content_length_is_refused_at_once(address):
  answer = _raw(address, f"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1:{_port(address)}\r\nContent-Type: "
                         "application/json\r\nContent-Length: -1\r\n\r\n{}".encode(), wait=20)
  assert answer.startswith(b"HTTP/1.0 400") and b"Content-Length -1 is negative" in answer


@pytest.mark.parametrize("body, message", [
    ({"code": [0.0] * 8, "moves": [1, 2]}, "'moves' must map direction ids to finite numbers"),
    ({"code": [0.0] * 8, "moves": {"pc0": "1"}}, "'moves' must map direction ids to finite numbers"),
    ({"code": [0.0] * 8, "other": "x", "blend": 0.5}, "'other' must be"),
    ({"code": [0.0] * 8, "other": {"seed": float("nan")}, "blend": 0.5}, "other.seed must be a whole number"),
    ({"code": [0.0] * 8, "other": {"seed": 2 ** 80}, "blend": 0.5}, "other.seed must be a whole number"),
    ({"code": [0.0] * 8, "other": {"test": 10 ** 4000 - 1}, "blend": 0.5}, "other.test must be a whole number"),
    ({"code": [0.0] * 8, "other": {"test": 10 ** 5000 - 1}, "blend": 0.5}, "is not JSON"),
    ({"code": [0.0] * 8, "blend": "half"}, "'blend' must be a number in [0, 1]"),
    ({"code": [0.0] * 7 + [1e39]}, "finite numbers in float32"),
    ({"code": [0.0] * 8, "moves": {"pc0": 1e308}}, "the edited code is not finite in float32"),
    ({"code": "0" * 8}, "'code' must be 8 finite numbers"),
    (b'{"code": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests deeper than"),
])
def test_requests_of_the_wrong_json_types_get_a_400_naming_the_field(address, body, message):
  if isinstance(body, dict):
    import sys as _sys  # pylint: disable=import-outside-toplevel
    limit = _sys.get_int_max_str_digits()
    _sys.set_int_max_str_digits(0)
    try:
      body = json.dumps(body).encode()
    finally:
      _sys.set_int_max_str_digits(limit)
  status, answer = _call(address + "/api/decode", body)
  assert status == 400 and message in answer["error"], answer
  assert _call(address + "/api/sample?seed=" + "9" * 30)[0] == 400


def test_other_hosts_origins_and_undeclared_posts_are_refused(address):
  port = _port(address)
  answer = _raw(address, f"GET /api/info HTTP/1.1\r\nHost: attacker.example:{port}\r\n\r\n".encode())
  assert answer.startswith(b"HTTP/1.0 403") and b"is not this server" in answer   # DNS rebinding
  ok = _raw(address, f"GET /api/info HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
  assert ok.startswith(b"HTTP/1.0 200")
  request = urllib.request.Request(address + "/api/decode", b'{"code": [0,0,0,0,0,0,0,0]}',
                                   {"Content-Type": "application/json", "Origin": "http://attacker.example"})
  with pytest.raises(urllib.error.HTTPError) as refused:
    urllib.request.urlopen(request, timeout=30)
  assert refused.value.code == 403 and "another site" in json.loads(refused.value.read())["error"]
  for path, kind in (("/api/decode", "text/plain"), ("/api/upload", "multipart/form-data; boundary=x")):
    status, answer = _call(address + path, b"{}", kind)   # what a cross-site form may send without asking
    assert status == 415 and "is not accepted here" in answer["error"]


def test_the_page_carries_a_strict_content_security_policy(address):
  import hashlib  # pylint: disable=import-outside-toplevel
  with urllib.request.urlopen(address + "/", timeout=30) as response:
    policy, page = response.headers["Content-Security-Policy"], response.read().decode()
  script = page.split("<script>", 1)[1].split("</script>", 1)[0]
  digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
  assert f"script-src 'sha256-{digest}';" in policy and "default-src 'none'" in policy
  assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy


def test_silent_connections_time_out_and_too_many_are_refused(explorer, monkeypatch):
  import socket  # pylint: disable=import-outside-toplevel
  import time  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(server, "SOCKET_TIMEOUT_SECONDS", 1)
  monkeypatch.setattr(server, "MAX_CONNECTIONS", 3)
  http = server.make_server(explorer, "127.0.0.1", 0)
  threading.Thread(target=http.serve_forever, daemon=True).start()
  port = http.server_address[1]
  held = []
  try:
    for _ in range(3):   # each promises a body and never sends it
      s = socket.create_connection(("127.0.0.1", port), timeout=10)
      s.sendall(f"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                "Content-Length: 100\r\n\r\n".encode())
      held.append(s)
    time.sleep(0.3)
    extra = _raw(f"http://127.0.0.1:{port}", f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert extra.startswith(b"HTTP/1.1 503")
    started = time.monotonic()
    for s in held:   # the server gives up on them after its timeout and closes them
      s.settimeout(10)
      while s.recv(65536):
        pass
    assert time.monotonic() - started < 8
    time.sleep(0.3)
    after = _raw(f"http://127.0.0.1:{port}", f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                             "Connection: close\r\n\r\n".encode())
    assert after.startswith(b"HTTP/1.0 200")   # their places are free again
  finally:
    for s in held:
      s.close()
    http.shutdown()
    http.server_close()


def test_uploads_decode_small_and_at_most_two_at_a_time(explorer, monkeypatch, rng):
  import time  # pylint: disable=import-outside-toplevel
  import tracemalloc  # pylint: disable=import-outside-toplevel
  from vaegan_jax.data import convert  # pylint: disable=import-outside-toplevel
  # A 16-bit PNG converts in its own width: about 5 bytes a pixel at the peak (int64 took 24+).
  buffer = io.BytesIO()
  Image.fromarray(rng.integers(0, 65536, (1500, 1500), dtype=np.uint16)).save(buffer, format="PNG")
  wide = Image.open(io.BytesIO(buffer.getvalue()))
  wide.load()
  tracemalloc.start()
  try:
    convert.square(wide, convert.ImageSpec(28, 1), "upload")
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak / (1500 * 1500) < 6.5
  # A large JPEG decodes at a draft scale that still covers the model's 28 pixels.
  photo = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(photo, format="JPEG")
  assert server.read_upload(photo.getvalue(), min_side=28).size == (500, 375)
  assert server.read_upload(photo.getvalue()).size == (4000, 3000)
  # At most DECODE_SLOTS uploads decode at once.
  busy, most, lock = [0], [0], threading.Lock()
  real = server.read_upload

  def slow(body, **kwargs):
    with lock:
      busy[0] += 1
      most[0] = max(most[0], busy[0])
    time.sleep(0.3)
    with lock:
      busy[0] -= 1
    return real(body, **kwargs)
  monkeypatch.setattr(server, "read_upload", slow)
  small = io.BytesIO()
  Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(small, format="PNG")
  threads = [threading.Thread(target=explorer.upload, args=(small.getvalue(),)) for _ in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(60)
  assert most[0] == server.DECODE_SLOTS == 2


def test_names_from_a_run_folder_are_text_in_the_page_never_markup(browser, explorer, address):
  """A run received from someone else names its attributes and labels: they must not run script."""
  evil = '<img src=x onerror="document.body.dataset.pwned=1">'
  direction = dl.Direction("evil", "attribute <b>group</b>", evil, explorer.directions["pc0"].vector, -1.0, 1.0)
  explorer.directions["evil"] = direction
  try:
    page = browser.new_page()
    page.goto(address + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    page.wait_for_timeout(500)
    assert page.get_attribute("body", "data-pwned") is None
    assert page.locator("label[for='s-evil']").text_content() == evil
    assert "attribute <b>group</b> (1)" in page.locator("#sliders summary").all_text_contents()
    page.close()
  finally:
    del explorer.directions["evil"]


def test_an_ipv6_loopback_host_is_served():
  import socket  # pylint: disable=import-outside-toplevel
  try:
    with socket.socket(socket.AF_INET6) as probe:
      probe.bind(("::1", 0))
  except OSError:
    pytest.skip("this machine has no IPv6 loopback")
  class Fake:   # the server needs no model to bind and answer a bad request
    pass
  http = server.make_server(Fake(), "::1", 0)
  threading.Thread(target=http.serve_forever, daemon=True).start()
  try:
    port = http.server_address[1]
    answer = _raw(f"http://[::1]:{port}", f"GET /nowhere HTTP/1.1\r\nHost: [::1]:{port}\r\nConnection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 404")
  finally:
    http.shutdown()
    http.server_close()
