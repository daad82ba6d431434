"""Datasets: the bundled sets' splits, and torchvision folder loaders on tiny files written here."""
import pickle
import struct

import numpy as np
import pytest
import torch

from tgo_errors import UsageError
from train.config import DataConfig
from train.data import batches, load_dataset


def test_digits_split_is_stratified_fixed_and_scaled():
    a, b = load_dataset(DataConfig()), load_dataset(DataConfig())
    assert a.train_x.shape == (1347, 1, 8, 8) and a.test_x.shape == (450, 1, 8, 8)
    assert torch.equal(a.test_x, b.test_x) and a.num_classes == 10
    assert float(a.train_x.min()) == 0.0 and float(a.train_x.max()) == 1.0
    counts = torch.bincount(a.test_y)
    assert counts.min() >= 43 and counts.max() <= 46  # 25% of 174..183 per class


def test_mnist5k_is_bundled():
    data = load_dataset(DataConfig(dataset="mnist5k"))
    assert data.input_shape == (1, 28, 28) and len(data.train_x) + len(data.test_x) == 5000
    assert torch.bincount(data.test_y).tolist() == [125] * 10


def _write_idx(folder, prefix, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, n, rows, cols) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, n) + labels.tobytes())


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_style_folder(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 9], dtype=np.uint8)
    _write_idx(tmp_path / folder / "raw", "train", images, labels)
    _write_idx(tmp_path / folder / "raw", "t10k", images[:3], labels[:3])
    data = load_dataset(DataConfig(dataset=name, data_dir=str(tmp_path)))
    assert data.train_x.shape == (6, 1, 28, 28) and data.test_x.shape == (3, 1, 28, 28)
    assert torch.allclose(data.train_x[2, 0], torch.from_numpy(images[2]).float() / 255)
    assert data.train_y.tolist() == labels.tolist() and data.num_classes == 10


@pytest.mark.parametrize("name, folder, files, key, classes", [
    ("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10),
    ("cifar100", "cifar-100-python", ["train", "test"], "fine_labels", 100),
])
def test_cifar_folder(tmp_path, name, folder, files, key, classes):
    rng = np.random.default_rng(1)
    (tmp_path / folder).mkdir()
    images = rng.integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)
    for file in files:
        with open(tmp_path / folder / file, "wb") as fh:
            pickle.dump({"data": images.reshape(2, -1), key: [7, 3], "batch_label": "b", "filenames": [b"a"]}, fh,
                        protocol=2)  # protocol 2 as the official files (bytes via _codecs.encode)
    data = load_dataset(DataConfig(dataset=name, data_dir=str(tmp_path)))
    assert data.input_shape == (3, 32, 32) and data.num_classes == classes
    assert torch.allclose(data.test_x[1], torch.from_numpy(images[1]).float() / 255)
    assert data.test_y.tolist() == [7, 3]


def test_missing_files_say_where_they_go(tmp_path):
    with pytest.raises(UsageError, match="MNIST/raw"):
        load_dataset(DataConfig(dataset="mnist", data_dir=str(tmp_path)))
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset(DataConfig(dataset="imagenet"))


def test_batches_cover_everything_once():
    x, y = torch.arange(10).float(), torch.arange(10)
    seen = torch.cat([yb for _, yb in batches(x, y, 3, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))


class _Planted:
    """Pickles to `os.system(command)`: what a planted CIFAR batch could run on load."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_planted_cifar_pickle_is_refused_without_running(tmp_path, protocol):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    marker = tmp_path / "ran"
    good = {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [0]}
    (folder / "train").write_bytes(pickle.dumps(good, protocol=protocol))
    (folder / "test").write_bytes(pickle.dumps({**good, "x": _Planted(f"touch {marker}")}, protocol=protocol))
    with pytest.raises(UsageError, match=r"refused without running it \(refused global (posix|os)\.system\)") as err:
        load_dataset(DataConfig(dataset="cifar100", data_dir=str(tmp_path)))
    assert not marker.exists() and "\n" not in str(err.value)


def test_cifar_content_is_checked(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float32), "fine_labels": [0, 1]}))
    (folder / "test").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "fine_labels": [0, 100]}))
    with pytest.raises(UsageError, match="uint8 array"):
        load_dataset(DataConfig(dataset="cifar100", data_dir=str(tmp_path)))
    (folder / "train").write_bytes((folder / "test").read_bytes())
    with pytest.raises(UsageError, match="labels outside 0..99"):
        load_dataset(DataConfig(dataset="cifar100", data_dir=str(tmp_path)))
