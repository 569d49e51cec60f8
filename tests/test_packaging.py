"""Packaging and documentation checks that need no docs build."""

import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import cwy_manifolds
from cwy_manifolds.cli import main

DOCS = Path(__file__).parents[1] / "docs"
INVENTORIES = sorted((DOCS / "_intersphinx").glob("*.inv"))


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: p.name)
def test_intersphinx_inventories_expand_their_placeholders(path):
    """In an inventory, ``$`` stands for the name only at the very end of a URI."""
    header_lines = 4
    body = zlib.decompress(path.read_bytes().split(b"\n", header_lines)[header_lines]).decode()
    entries = [line.split(" ", 4) for line in body.splitlines() if line]
    assert entries
    for name, _, _, uri, _ in entries:
        assert "$" not in uri[:-1], f"{name}: {uri}"


def test_import_under_warnings_as_errors():
    code = "import cwy_manifolds, cwy_manifolds.nn, cwy_manifolds.tools.compare"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_version_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"cwy-manifolds {cwy_manifolds.__version__} (torch")
