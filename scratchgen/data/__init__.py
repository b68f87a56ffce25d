"""Data: the embedded digits split every model and metric shares, a real loader for MNIST-format
IDX files, and a seeded, resumable ``DataLoader``.

    from scratchgen import Generator
    from scratchgen.data import load_images, DataLoader, TensorDataset
    data = load_images("digits")                      # or "idx:FOLDER", image_size=16, ...
    loader = DataLoader(TensorDataset(*data.train_arrays), batch_size=64, shuffle=True,
                        generator=Generator(0))
"""
from .digits import load_digits_split  # noqa: F401
from .idx import IDXError, load_idx_folder, read_idx, write_idx  # noqa: F401
from .images import ImageData, average_pool, resize_bilinear  # noqa: F401
from .sources import load_images  # noqa: F401
from ..utils.data import DataLoader, TensorDataset  # noqa: F401  (one DataLoader: scratchgen.utils.data)
