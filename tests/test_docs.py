"""Every relative link and image path in README.md, docs/ and benchmarks/README.md resolves."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = sorted([REPO / "README.md", REPO / "benchmarks" / "README.md", *(REPO / "docs").rglob("*.md")])
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _slug(heading: str) -> str:
  """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(page: pathlib.Path) -> set[str]:
  return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)}


def _links(page: pathlib.Path) -> list[str]:
  text, in_code, out = page.read_text(encoding="utf-8"), False, []
  for line in text.splitlines():
    if line.startswith("```"):
      in_code = not in_code
    elif not in_code:
      out += [m.group(1) for m in _LINK.finditer(re.sub(r"`[^`]*`", "", line))]
  return out


def test_the_pages_exist_and_link_to_something():
  assert (REPO / "docs" / "models").is_dir() and len(PAGES) >= 10
  assert sum(len(_links(p)) for p in PAGES) >= 30


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_image_resolves(page):
  broken = []
  for target in _links(page):
    if re.match(r"[a-z]+:", target):   # http:, https:, mailto:
      continue
    path, _, anchor = target.partition("#")
    linked = page.parent / path if path else page
    if not linked.exists():
      broken.append(target)
    elif anchor and anchor not in _headings(linked):
      broken.append(f"{target} (no such heading)")
  assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"
