"""The Python code blocks of the README and the docs pages run (each file in order)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts and re.search("```python", p.read_text())]


def test_pages_with_code_exist():
    assert ROOT / "README.md" in PAGES
    assert len(PAGES) >= 4


#: Seconds for a block run in its own process (a healthy one takes a few).
ALONE_TIMEOUT = 120


def _run_alone(block: str, where: str) -> None:
    """Run a self-contained block in a new process, once more if it hangs.

    Blocks that start a ``torch.distributed`` process group run this way: in torch 2.13,
    freeing a gloo group can deadlock, rarely (once in about 300 runs of this block): the
    main thread joins gloo's worker thread while holding the GIL, and the worker waits for
    the GIL to free the thread-local state of its last work (stacks seen with py-spy). In
    the test process that hangs the whole suite; here it costs a second try.
    """
    for _ in range(2):
        try:
            done = subprocess.run([sys.executable, "-c", block], timeout=ALONE_TIMEOUT,
                                  capture_output=True, text=True)  # fmt: skip
        except subprocess.TimeoutExpired:
            continue
        assert done.returncode == 0, f"{where} failed:\n{done.stderr}"
        return
    pytest.fail(f"{where} hung twice ({ALONE_TIMEOUT} s each)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page):
    namespace: dict = {}
    for k, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)):
        where = f"{page.name} block {k + 1}"
        if "init_process_group" in block:
            _run_alone(block, where)
        else:
            exec(compile(block, where, "exec"), namespace)


TEXT_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TEXT_PAGES = [p for p in TEXT_PAGES if "_build" not in p.parts and "auto_examples" not in p.parts]


@pytest.mark.parametrize("page", TEXT_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters(page):
    """A tab or other control character in a page is an escape gone wrong (``"\\top"``)."""
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        bad = [c for c in line if ord(c) < 32 or ord(c) == 127]
        assert not bad, f"{page.name}:{number}: control character(s) {bad!r} in {line!r}"
