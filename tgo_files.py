"""Atomic file output: a reader never sees a half-written artifact, an interruption never damages an old one.

Every artifact is written to a temporary name beside its target, fsynced, given the usual permissions
(0666 / 0777 minus the umask, as `open` and `mkdir` would: not the temp-file route's 0600 / 0700), and renamed
into place. JSON is strict: a non-finite float is written as `null`, never as a bare `NaN`.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tgo_errors import UsageError


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """UsageError now, before any work, if folder `path` could not be created or written later: a file in
    the way (itself or a parent), a folder without write permission, or a name longer than the file system
    allows. Creates nothing."""
    path = Path(path)
    existing = next(p for p in [*path.parents, Path(".")] if os.path.lexists(p))
    limit = os.pathconf(existing, "PC_NAME_MAX") if existing.is_dir() else 255
    if any(len(part.encode()) > limit for part in path.parts):
        raise UsageError(f"{flag} '{path}': a name is longer than the {limit} bytes this file system allows")
    existing = path if os.path.lexists(path) else existing
    if not existing.is_dir():
        raise UsageError(f"{flag} '{path}': '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} '{path}': no permission to write into '{existing}'")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (best effort: some file systems refuse to fsync a folder)."""
    try:
        _fsync_file(path)
    except OSError:
        pass


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, else it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync_file(Path(tmp))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def finite_or_null(data: Any) -> Any:
    """`data` with every non-finite float (NaN, +-inf) replaced by None, recursively through dicts and lists."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_null(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_null(value) for value in data]
    return data


def strict_json(data: Any, **kwargs) -> str:
    """JSON text that every parser accepts: non-finite floats become null (see `finite_or_null`)."""
    return json.dumps(finite_or_null(data), allow_nan=False, **kwargs)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, strict_json(data, indent=2, sort_keys=True) + "\n")


def append_json_line(path: Path, data: Any) -> None:
    """Append one strict-JSON line to `path` (a .jsonl log) and fsync it."""
    with open(path, "a") as fh:
        fh.write(strict_json(data) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it becomes `path` (replacing an old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        for item in tmp.rglob("*"):
            if item.is_file() and not item.is_symlink():
                _fsync_file(item)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
