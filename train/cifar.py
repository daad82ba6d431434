"""CIFAR-10/100 from a local folder in torchvision's layout, read without running code from the files.

CIFAR's python files are pickles, and `pickle.load` runs whatever callable a file names, so a planted
`data_batch_1` would execute code. `SafeUnpickler` admits only what the official files hold: dicts, lists,
strings, bytes and ints (no callable needed) plus numpy arrays, rebuilt through numpy's own reconstruct
functions (`_reconstruct`, and `_frombuffer` for protocol 5); any other global (e.g. `os.system`) is refused before anything is called.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import numpy as np

try:  # numpy >= 2 (numpy.core is a deprecated alias there)
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:
    from numpy.core.multiarray import _reconstruct
    from numpy.core.numeric import _frombuffer

from tgo_errors import UsageError

_ALLOWED: Dict[Tuple[str, str], Callable[..., Any]] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},  # pickle protocol 5
}
_LATIN1 = ("latin1", "latin-1", "iso-8859-1")
IMAGE_BYTES = 3 * 32 * 32

# name: (folder under data_dir, training files, test files, label key, classes)
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{k}" for k in range(1, 6)), ("test_batch",), "labels", 10),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels", 100),
}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes, restricted to latin-1 (no other codec runs)."""
    if encoding.lower() not in _LATIN1 or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose only callables are numpy's array reconstruction and a latin-1 encoder."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def read_batch(path: Path, label_key: str) -> Tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle -> (images [N, 3, 32, 32] uint8, labels [N] int64); anything else is a UsageError."""
    try:
        entry = SafeUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise UsageError(f"'{path}' is not a CIFAR python batch, refused without running it ({err})") from None
    except OSError as err:
        raise UsageError(f"cannot read '{path}' ({err.strerror})") from None
    data = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get(label_key) if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES:
        raise UsageError(f"'{path}': 'data' must be a uint8 array [N, {IMAGE_BYTES}]")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(v) is int for v in labels):
        raise UsageError(f"'{path}': '{label_key}' must be a list of {len(data)} ints")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def read_split(folder: Path, files: Tuple[str, ...], label_key: str, classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """The concatenated batches `files` of `folder`; labels outside 0..classes-1 are a UsageError."""
    parts = [read_batch(folder / name, label_key) for name in files]
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise UsageError(f"{folder}: labels outside 0..{classes - 1}")
    return images, labels
