"""Atomic file output: a reader never sees a half-written file, a crash leaves the old one."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hoirecon.errors import OutOfSpaceError

#: errno values of a write that ran out of room: a full disk, a quota, a file-size limit (ulimit -f).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def _no_space_as_error(path: Path) -> Iterator[None]:
    """A write of ``path`` that runs out of room as one ``OutOfSpaceError`` naming it."""
    try:
        yield
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise OutOfSpaceError(
                f"{path}: no space left to write it ({os.strerror(exc.errno)}); the old file, if any, is untouched"
            ) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary name keeps the suffix, so writers that pick a format by extension
    (trimesh, imageio, numpy) work unchanged; it starts with a dot and holds ``.tmp`` so that
    ``remove_temporaries`` finds it after a killed write. On an exception the temporary file is
    removed; a write that runs out of space is an ``OutOfSpaceError`` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _no_space_as_error(path):
            yield tmp_path
            if tmp_path.exists():  # mkstemp makes the file private; give it the usual permissions
                os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove what killed atomic writes left in ``folder`` and its subfolders (``.name.*.tmp*`` files
    and folders); returns them. Called when a run resumes: no writer of the run is alive then."""
    folder = Path(folder)
    found = sorted(p for p in folder.rglob(".*.tmp*") if p.name.startswith(".")) if folder.is_dir() else []
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
    return found


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (a folder, if any)
    whole, so a reader sees the old folder or the new one, never a mix. On an exception the
    temporary folder is removed and ``path`` is untouched. The names are those ``remove_temporaries``
    finds after a kill."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        with _no_space_as_error(path):
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes the folder private; give it the usual permissions
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=".tmp", dir=path.parent))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
