"""Writing a set of output files together: checked up front, staged, renamed into place.

Note [output files]
~~~~~~~~~~~~~~~~~~~
An output folder holds the files of one run of the command, never a mix. Before any
computation, :func:`check_folder` makes sure the folder can be written and that no
target name is taken by something that is not a file (a directory named
``results.json``). :func:`write_files` then writes every file into a hidden staging
folder inside the output folder (same file system), removes the files of the previous
run that the new one does not replace (listed in the manifest ``.cwy-manifolds-outputs``),
and renames the new files into place, each rename atomic. An interrupted or failing
write leaves the previous files, and removes its staging folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .results import ConfigError

__all__ = ["MANIFEST", "check_folder", "write_files"]

#: Name of the file listing the outputs of the last run in a folder.
MANIFEST = ".cwy-manifolds-outputs"


def check_folder(folder: str | Path, names: Iterable[str], *, flag: str = "--out") -> Path:
    """Check that ``folder`` can be created (or exists) and ``names`` written there.

    Creates nothing: a probe folder with a probe file is made and removed in the nearest
    existing ancestor, which catches read-only and pseudo file systems (``/proc``, also
    for root). Raises ConfigError (a ValueError) naming ``flag``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp()) / "new"
    >>> check_folder(folder, ["summary.csv"]) == folder, folder.exists()
    (True, False)
    """
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(0, f"{existing} is a file")
        with tempfile.TemporaryDirectory(dir=existing, prefix=".write-test-") as probe:
            (Path(probe) / "probe").write_text("")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"{flag} must be a writable folder; got {str(folder)!r} ({reason})"
        ) from None
    for name in names:
        target = folder / name
        if target.exists() and not target.is_file():
            raise ConfigError(
                f"{flag} must not hold a non-file at an output name; got {str(target)!r} "
                "(a directory?): move it away or choose another folder"
            )
    return folder


def _previous(folder: Path) -> list[str]:
    try:
        names = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str) and "/" not in n and n not in (".", "..")]


def write_files(
    folder: str | Path,
    writers: Mapping[str, Callable[[Path], object]],
    *,
    known: Iterable[str] = (),
) -> list[Path]:
    """Write ``writers[name](path)`` for every name, then move them all into ``folder``.

    Files of the previous run that this one does not write are removed (Note [output
    files]), and so are files named in ``known`` (the names the tool can write: outputs
    of a run from before the manifest existed). Returns the paths written, in order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
    try:
        for name, write in writers.items():
            write(stage / name)
        for stale in (set(_previous(folder)) | set(known)) - set(writers):
            path = folder / stale
            if path.is_file():
                path.unlink()
        paths = []
        for name in writers:
            os.replace(stage / name, folder / name)
            paths.append(folder / name)
        manifest = stage / MANIFEST
        manifest.write_text(json.dumps(list(writers)))
        os.replace(manifest, folder / MANIFEST)
        return paths
    finally:
        shutil.rmtree(stage, ignore_errors=True)
