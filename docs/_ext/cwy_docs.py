"""Sphinx extension of these docs: the numerical Notes page, links to it, a link check.

The code names each non-obvious numerical decision once, as a Note in a docstring::

    Note [determinant parity]
    ~~~~~~~~~~~~~~~~~~~~~~~~~
    Each reflection has determinant -1, ...

and cites it elsewhere as ``Note [determinant parity]``. This extension

- collects every Note of the package into ``notes.rst`` (written before the build reads
  the sources, so the page is always current), one section per Note with a label;
- turns each citation in a rendered docstring into a link to that section;
- fails the build if a rendered link still contains ``$`` (an intersphinx inventory
  whose placeholder was not expanded).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

HEADER = re.compile(r"^Note \[([^\]]+)\]\n~{3,}\n", re.M)
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|obj|exc):`~?([^`<]+)`")
CITATION = re.compile(r"Note \[([^\]]+)\](?!\n~)")


def _slug(name: str) -> str:
    return "note-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def collect(package: Path) -> list[tuple[str, str, str]]:
    """Return ``(name, module path, body)`` for every Note in the docstrings of ``package``."""
    notes = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        nodes = [
            tree,
            *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))),
        ]
        for node in nodes:
            doc = ast.get_docstring(node)
            if not doc:
                continue
            heads = list(HEADER.finditer(doc))
            if not heads:
                continue
            for head, after in zip(heads, [*heads[1:], None], strict=True):
                body = doc[head.end() : after.start() if after else len(doc)]
                body = re.split(r"\n(?=\S[^\n]*\n-{3,}\n)", body)[0]  # up to a numpydoc section
                # cross-references are relative to the note's module: show them as code
                body = ROLE.sub(lambda m: f"``{m.group(1)}``", body)
                rel = path.relative_to(package.parent).as_posix()
                notes.append((head.group(1), rel, body.strip()))
    return notes


def write_page(app: Sphinx) -> None:
    """Write ``notes.rst`` into the source folder from the package's docstrings."""
    import cwy_manifolds

    notes = collect(Path(cwy_manifolds.__file__).parent)
    app.env.cwy_notes = {name for name, _, _ in notes}  # type: ignore[attr-defined]
    lines = [
        ".. This page is written by docs/_ext/cwy_docs.py at every build; do not edit.",
        "",
        "Numerical notes",
        "===============",
        "",
        "Each non-obvious numerical decision of the code is written down once, as a *Note*",
        "in the docstring of the module or function that makes it, and cited by name",
        "elsewhere in the code, the tests and these docs. This page collects them all.",
        "",
    ]
    for name, where, body in sorted(notes, key=lambda n: n[0].lower()):
        title = f"Note [{name}]"
        lines += [f".. _{_slug(name)}:", "", title, "-" * len(title), "", f"*In* ``{where}``.", ""]
        lines += [body, ""]
    page = Path(app.srcdir) / "notes.rst"
    text = "\n".join(lines)
    if not page.exists() or page.read_text() != text:
        page.write_text(text)


def link_citations(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Turn ``Note [x]`` in a docstring into a link to its section of the Notes page."""
    text = "\n".join(lines)
    linked = CITATION.sub(lambda m: f":ref:`Note [{m.group(1)}] <{_slug(m.group(1))}>`", text)
    lines[:] = linked.split("\n")


def check_links(app: Sphinx, exception: Exception | None) -> None:
    """Fail the build when a rendered link contains an unexpanded ``$``."""
    if exception is not None or app.builder.format != "html":
        return
    bad = []
    for page in Path(app.outdir).rglob("*.html"):
        bad += [
            f"{page.name}: {href}"
            for href in re.findall(r'href="([^"]*\$[^"]*)"', page.read_text())
        ]
    if bad:
        raise ExtensionError(
            f"links must not contain '$' (an unexpanded inventory entry); got {bad[:5]}"
        )


def setup(app: Sphinx) -> dict[str, object]:
    """Register the extension's event handlers."""
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("builder-inited", write_page)
    app.connect("autodoc-process-docstring", link_citations)
    app.connect("build-finished", check_links)
    return {"parallel_read_safe": True}
