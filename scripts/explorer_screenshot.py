"""A screenshot of explore.py's page on a checkpoint, with some sliders moved (for the docs).

  VAEGAN_DATA_DIR=../shared/data python scripts/explorer_screenshot.py --workdir runs/vaegan_celeba \\
      --test 3 --set attr_Eyeglasses=1.5,attr_Smiling=1 --out docs/evidence/explorer_celeba.png
  python scripts/explorer_screenshot.py --workdir runs/vaegan_mnist5k --test 0 --blend 7=0.5 \\
      --out docs/evidence/explorer_mnist.png

Serves the explorer in-process on a free port, opens the page in headless Chromium (Debian's
``chromium``, driven by Playwright; ``--chromium`` for another binary), picks the test image,
moves the named sliders (direction id = value, as the page shows them) and the blend
(test index = fraction), waits until the shown image answers them, and saves the whole page.
Prints the browser-measured round trip of each decode request it made.
"""

import argparse
import shutil
import threading

import vaegan_jax
from vaegan_jax.explorer import server


def _pairs(text: str) -> list[tuple[str, float]]:
  return [(k, float(v)) for k, v in (item.split("=", 1) for item in text.split(",") if item)]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=int, default=None)
  parser.add_argument("--test", type=int, default=0, help="test image to start from")
  parser.add_argument("--set", default="", help="comma-separated direction=value slider settings")
  parser.add_argument("--blend", default="", help="TEST_INDEX=FRACTION: blend towards that test image")
  parser.add_argument("--open", default="", help="comma-separated slider groups to leave open (default all)")
  parser.add_argument("--out", required=True, help="PNG file to write")
  parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
  args = parser.parse_args()
  from playwright.sync_api import sync_playwright  # pylint: disable=import-outside-toplevel

  explorer = server.Explorer.from_model(vaegan_jax.load(args.workdir, args.step))
  http = server.make_server(explorer, "127.0.0.1", 0)
  threading.Thread(target=http.serve_forever, daemon=True).start()
  try:
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=args.chromium, args=server.CHROMIUM_FLAGS)
      page = browser.new_page(viewport={"width": 1280, "height": 760}, bypass_csp=True)  # wait_for_function evaluates
      page.goto(f"http://127.0.0.1:{http.server_address[1]}/")
      page.wait_for_selector("body[data-ready='1']", timeout=120_000)
      if args.open:
        keep = args.open.split(",")
        page.evaluate("keep => document.querySelectorAll('#sliders details').forEach(d => "
                      "{ d.open = keep.some(k => d.querySelector('summary').textContent.startsWith(k)); })", keep)
      page.fill("#test-index", str(args.test))
      page.dispatch_event("#test-index", "change")
      page.wait_for_function(f"document.querySelector('#original-caption').textContent.startsWith('test image {args.test}')")
      times = []
      settings = [(f"#s-{k}", v) for k, v in _pairs(args.set)]
      if args.blend:
        (other, fraction), = _pairs(args.blend)
        page.fill("#other-index", other)
        page.dispatch_event("#other-index", "change")
        settings.append(("#blend", fraction))
      for selector, value in settings:
        page.evaluate("([s, v]) => { const el = document.querySelector(s); el.value = v; "
                      "el.dispatchEvent(new Event('input')); }", [selector, value])
        page.wait_for_function("window.explorer.idle()")
        times.append(float(page.get_attribute("body", "data-last-round-trip-ms")))
      page.screenshot(path=args.out, full_page=True)
      browser.close()
  finally:
    http.shutdown()
  print(f"{args.out}: {explorer.model}; decode round trips (ms, in the browser): {times}")


if __name__ == "__main__":
  main()
