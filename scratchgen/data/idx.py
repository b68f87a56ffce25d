"""MNIST-format IDX files: a real loader for MNIST, Fashion-MNIST, KMNIST, EMNIST...

The IDX layout (LeCun et al.), all integers big-endian:

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 d bytes   the d dimension sizes, uint32 each
    the rest    the elements, row-major

``--data idx:FOLDER`` reads four files from FOLDER, each optionally gzipped (``.gz``), named as
the MNIST distribution names them::

    train-images-idx3-ubyte   train-labels-idx1-ubyte   (training split)
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte    (test split; a "test-" prefix also works)

Images (uint8, 0..255) are scaled to float32 in [0, 1]; labels become int64.
"""
import gzip
import os

import numpy as np

from .images import ImageData

_TYPE_CODES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_SPLITS = {"train": ("train",), "test": ("t10k", "test")}


class IDXError(ValueError):
    """A missing, corrupt or inconsistent IDX file (the message names the file and the problem)."""


def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_idx(path):
    """The array stored in one IDX file (``.gz`` is decompressed), checked against its header."""
    try:
        with _open(path) as handle:
            content = handle.read()
    except FileNotFoundError:
        raise IDXError(f"read_idx: no such file {path}") from None
    except (OSError, EOFError) as error:  # gzip raises these for a damaged archive
        raise IDXError(f"read_idx: cannot read {path} ({error})") from error
    if len(content) < 4 or content[:2] != b"\x00\x00" or content[2] not in _TYPE_CODES:
        raise IDXError(f"read_idx: {path} is not an IDX file: expected magic bytes 00 00 <type> <ndim> "
                       f"with type in {sorted(hex(c) for c in _TYPE_CODES)}, got {content[:4].hex(' ')}")
    dtype, ndim = np.dtype(_TYPE_CODES[content[2]]), content[3]
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise IDXError(f"read_idx: {path} is truncated: its header announces {ndim} dimensions but the file "
                       f"has only {len(content)} bytes")
    shape = tuple(int(n) for n in np.frombuffer(content, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        problem = "truncated" if len(content) < expected else "longer than its header says"
        raise IDXError(f"read_idx: {path} is {problem}: expected {expected} bytes for shape {shape} of "
                       f"{dtype.name}, got {len(content)}")
    array = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzipped when ``path`` ends in ``.gz``); the inverse of ``read_idx``."""
    array = np.asarray(array)
    codes = {np.dtype(dtype).newbyteorder("="): code for code, dtype in _TYPE_CODES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: expected an array of {sorted(str(d) for d in codes)}, got {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    big_endian = array.astype(np.dtype(_TYPE_CODES[code]), copy=False)
    with (gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb")) as handle:
        handle.write(header + np.ascontiguousarray(big_endian).tobytes())


def _find(folder, split, kind):
    """The path of ``split``'s ``kind`` ("images"/"labels") file in ``folder``, gzipped or not."""
    rank = 3 if kind == "images" else 1
    candidates = [os.path.join(folder, f"{prefix}-{kind}-idx{rank}-ubyte{suffix}")
                  for prefix in _SPLITS[split] for suffix in ("", ".gz")]
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    raise IDXError(f"idx data: no {split} {kind} file in {folder}: expected one of "
                   f"{[os.path.basename(c) for c in candidates]}")


def _load_split(folder, split):
    images_path, labels_path = _find(folder, split, "images"), _find(folder, split, "labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(f"idx data: expected uint8 images of shape (N, H, W) in {images_path}, "
                       f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IDXError(f"idx data: expected uint8 labels of shape (N,) in {labels_path}, "
                       f"got {labels.dtype} of shape {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(f"idx data: {images_path} holds {len(images)} images but {labels_path} holds "
                       f"{len(labels)} labels; expected the same count")
    return (images / np.float32(255)).astype(np.float32), labels.astype(np.int64)


def load_idx_folder(folder):
    """The train and test splits stored in ``folder`` as ``ImageData`` (see the module docstring)."""
    if not os.path.isdir(folder):
        raise IDXError(f"idx data: expected a folder of IDX files, got {folder!r} (not a folder)")
    train_images, train_labels = _load_split(folder, "train")
    test_images, test_labels = _load_split(folder, "test")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise IDXError(f"idx data: train images are {train_images.shape[1:]} but test images are "
                       f"{test_images.shape[1:]}; expected one image size")
    return ImageData(f"idx:{folder}", train_images, train_labels, test_images, test_labels)
