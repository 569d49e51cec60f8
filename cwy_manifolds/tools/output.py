"""Writing a set of output files together: checked up front, staged, renamed into place.

Note [output files]
~~~~~~~~~~~~~~~~~~~
An output folder holds the files of one run of the command, never a mix. Before any
optimization, :func:`check_folder` makes sure the folder can be written and that no
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
    """Create ``folder`` and check that ``names`` can be written there; raise ConfigError.

    Examples
    --------
    >>> import tempfile
    >>> check_folder(tempfile.mkdtemp(), ["summary.csv"]).is_dir()
    True
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
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
