"""The Python code blocks of the README and the docs pages run (each file in order)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts and re.search("```python", p.read_text())]


def test_pages_with_code_exist():
    assert ROOT / "README.md" in PAGES
    assert len(PAGES) >= 4


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page):
    namespace: dict = {}
    for k, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)):
        exec(compile(block, f"{page.name} block {k + 1}", "exec"), namespace)


TEXT_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TEXT_PAGES = [p for p in TEXT_PAGES if "_build" not in p.parts and "auto_examples" not in p.parts]


@pytest.mark.parametrize("page", TEXT_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters(page):
    """A tab or other control character in a page is an escape gone wrong (``"\\top"``)."""
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        bad = [c for c in line if ord(c) < 32 or ord(c) == 127]
        assert not bad, f"{page.name}:{number}: control character(s) {bad!r} in {line!r}"
