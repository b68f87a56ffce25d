"""Iterating DataLoaders over a TensorDataset and a map-style Dataset: batch shapes, values and
dtypes, drop_last, and a shuffled epoch compared by what it holds, not its order (PyTorch code)."""
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
import numpy as np


class Windows(Dataset):
    """Example i: the float window values[i:i + 3] and the int label i % 2."""

    def __init__(self, values):
        self.values = values

    def __len__(self):
        return len(self.values) - 2

    def __getitem__(self, i):
        return self.values[i:i + 3], i % 2


def build():
    return None


def run(model):
    rng = np.random.default_rng(3)
    features = torch.from_numpy(rng.standard_normal((11, 4)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, size=11))
    dataset = TensorDataset(features, labels)
    outputs = {}
    for drop_last in (False, True):
        loader = DataLoader(dataset, batch_size=4, drop_last=drop_last)
        batches = list(loader)
        outputs[f"sizes_drop_last={drop_last}"] = np.array([len(b[0]) for b in batches])
        outputs[f"features_drop_last={drop_last}"] = torch.cat([b[0] for b in batches]).numpy()
        outputs[f"labels_drop_last={drop_last}"] = torch.cat([b[1] for b in batches]).numpy()
        outputs[f"len_drop_last={drop_last}"] = np.array(len(loader))
    windows = list(DataLoader(Windows(torch.arange(10.0)), batch_size=3))
    outputs["window_batches"] = torch.cat([w for w, _ in windows]).numpy()
    outputs["window_labels"] = torch.cat([label for _, label in windows]).numpy()
    torch.manual_seed(0)
    shuffled = DataLoader(dataset, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(5))
    seen = torch.cat([b[1] for b in shuffled]).numpy()
    outputs["shuffled_labels_sorted"] = np.sort(seen)
    outputs["shuffled_batches"] = np.array(len(list(shuffled)))
    return outputs
