"""Output files written together: all new ones appear at once, or none do.

Each file is first written under a temporary name in its folder, then renamed over the
final name, so that an interrupted or failed run never leaves a truncated file beside
complete ones, or new files beside stale ones of a previous run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["check_writable", "write_together"]


def check_writable(folder: str | os.PathLike, names: Iterable[str], what: str = "out") -> Path:
    """Check that ``folder`` can be created (or exists) and files ``names`` written there.

    Done before any long computation, so that a bad output folder fails at once, and
    without leaving anything behind: a probe folder with a probe file is created and
    removed in the nearest existing ancestor (which catches read-only file systems and
    pseudo file systems such as ``/proc``, also for root), and none of ``names`` may be
    an existing directory. Raises ValueError naming ``what``.
    """
    path = Path(folder)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(0, f"{existing} is a file")
        with tempfile.TemporaryDirectory(dir=existing) as probe:
            (Path(probe) / "probe").write_text("")
    except OSError as error:
        reason = error.strerror or type(error).__name__
        message = f"{what} must be a writable folder; got {str(folder)!r} ({reason})"
        raise ValueError(message) from None
    for name in names:
        if (path / name).is_dir():
            raise ValueError(
                f"{what} must not hold a folder named {name!r}, where an output file goes; "
                f"got {str(path / name)!r}"
            )
    return path


def write_together(files: Mapping[Path, Callable[[Path], object]]) -> list[Path]:
    """Write every file with its writer, under temporary names, then rename them all.

    ``files`` maps each final path to ``writer(temporary_path)``; missing folders are
    created. If a writer fails, the temporary files are removed and the final paths are
    left as they were.
    """
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = {path: path.with_name(f".{path.name}.tmp{path.suffix}") for path in files}
    try:
        for path, write in files.items():
            write(temporary[path])
    except BaseException:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)
        raise
    for path, tmp in temporary.items():
        os.replace(tmp, path)
    return list(files)
