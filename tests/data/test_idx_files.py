"""The MNIST-format IDX loader, on small files the tests write."""
import gzip

import numpy as np
import pytest

from scratchgen.data import IDXError, load_idx_folder, load_images, read_idx, write_idx


def write_mnist_folder(folder, train=30, test=10, side=8, gzipped=False, test_prefix="t10k"):
    """A miniature MNIST: random uint8 images with labels 0..9, under MNIST's file names."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gzipped else ""
    for prefix, count in (("train", train), (test_prefix, test)):
        images = rng.integers(0, 256, (count, side, side), dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(count) % 10).astype(np.uint8))
    return folder


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_write_then_read_gives_the_array_back(tmp_path, dtype, name):
    array = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == array.dtype and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_as_the_format_says(tmp_path):
    write_idx(tmp_path / "x", np.zeros((2, 3), dtype=np.int16))
    raw = (tmp_path / "x").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2]) and raw[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert len(raw) == 12 + 2 * 3 * 2


@pytest.mark.parametrize("gzipped", [False, True])
def test_folder_loads_scaled_images_and_labels(tmp_path, gzipped):
    write_mnist_folder(tmp_path, gzipped=gzipped)
    data = load_idx_folder(str(tmp_path))
    assert data.train_images.shape == (30, 8, 8) and data.test_images.shape == (10, 8, 8)
    assert data.train_images.dtype == np.float32
    assert 0 <= data.train_images.min() <= data.train_images.max() <= 1
    raw = read_idx(tmp_path / ("train-images-idx3-ubyte" + (".gz" if gzipped else "")))
    np.testing.assert_allclose(data.train_images, raw / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.test_labels, np.arange(10))


def test_test_prefix_and_resizing_through_load_images(tmp_path):
    write_mnist_folder(tmp_path, side=12, test_prefix="test")
    data = load_images(f"idx:{tmp_path}", image_size=8)
    assert data.image_shape == (8, 8) and data.name == f"idx:{tmp_path}"


def test_missing_folder_and_missing_files(tmp_path):
    with pytest.raises(IDXError, match="not a folder"):
        load_idx_folder(str(tmp_path / "nowhere"))
    with pytest.raises(IDXError, match="no train images file .*train-images-idx3-ubyte"):
        load_idx_folder(str(tmp_path))


def test_bad_magic_is_named(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(IDXError, match="not an IDX file: expected magic bytes 00 00 <type> <ndim>.*got 50"):
        read_idx(tmp_path / "x")


def test_truncated_and_overlong_files(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 5, 5), dtype=np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-7])
    with pytest.raises(IDXError, match=r"truncated: expected 116 bytes for shape \(4, 5, 5\) of uint8, got"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(raw[:9])
    with pytest.raises(IDXError, match="truncated: its header announces 3 dimensions"):
        read_idx(tmp_path / "header")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(IDXError, match="longer than its header says"):
        read_idx(tmp_path / "long")


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(4) + bytes(10))[:-6])
    with pytest.raises(IDXError, match="cannot read"):
        read_idx(tmp_path / "x.gz")


def test_mismatched_counts_and_shapes(tmp_path):
    write_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(29, dtype=np.uint8))
    with pytest.raises(IDXError, match="holds 30 images but .* holds 29 labels"):
        load_idx_folder(str(tmp_path))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((30, 1), dtype=np.uint8))
    with pytest.raises(IDXError, match="expected uint8 labels of shape \\(N,\\)"):
        load_idx_folder(str(tmp_path))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(30, dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 9, 9), dtype=np.uint8))
    with pytest.raises(IDXError, match="expected one image size"):
        load_idx_folder(str(tmp_path))
