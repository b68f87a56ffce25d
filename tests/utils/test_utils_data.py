"""scratchgen.utils.data as a PyTorch user meets it: TensorDataset and map-style datasets, batches of
Tensors, shuffling by manual_seed or an explicit Generator, and PyTorch's batches when unshuffled."""
import itertools

import numpy as np
import pytest

import scratchgen as sg
from conftest import require_torch
from scratchgen.utils.data import DataLoader, Dataset, TensorDataset, default_collate


class Squares(Dataset):
    """A map-style dataset: example i is (a 2-vector, an int label, a float)."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return sg.tensor([i, i * i], dtype=sg.float32), i % 3, i / 2


def order(loader):
    return [batch[0].data[:, 0].tolist() for batch in loader]


def test_a_tensor_dataset_yields_tensors_in_batches():
    x, y = sg.arange(10.0).reshape(5, 2), sg.arange(5)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=2))
    assert [tuple(b[0].shape) for b in batches] == [(2, 2), (2, 2), (1, 2)]
    assert all(isinstance(t, sg.Tensor) for batch in batches for t in batch)
    np.testing.assert_array_equal(batches[2][1].data, [4])


def test_a_map_style_dataset_is_collated_as_pytorch_does():
    vectors, labels, halves = next(iter(DataLoader(Squares(), batch_size=3)))
    assert vectors.shape == (3, 2) and vectors.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2]
    assert halves.dtype == np.float64  # Python floats are doubles in PyTorch's default_collate
    assert default_collate([{"a": 1}, {"a": 2}])["a"].tolist() == [1, 2]
    with pytest.raises(TypeError, match="default_collate: expected"):
        default_collate([object()])


def test_shuffling_follows_manual_seed_and_changes_each_epoch():
    loader = DataLoader(TensorDataset(sg.arange(20.0).reshape(10, 2)), batch_size=4, shuffle=True)
    sg.manual_seed(3)
    first, second = order(loader), order(loader)
    sg.manual_seed(3)
    assert order(loader) == first
    assert first != second
    assert sorted(sum(first, [])) == list(range(0, 20, 2))


def test_an_explicit_generator_drives_the_order_and_the_global_one_does_not():
    data = TensorDataset(sg.arange(16.0).reshape(8, 2))
    orders = []
    for global_seed in (0, 1):
        sg.manual_seed(global_seed)
        generator = sg.Generator().manual_seed(7)
        orders.append(order(DataLoader(data, batch_size=3, shuffle=True, generator=generator)))
    assert orders[0] == orders[1]


def test_drop_last_and_len():
    loader = DataLoader(TensorDataset(sg.zeros(10, 1)), batch_size=4, drop_last=True)
    assert len(loader) == 2 and len(list(loader)) == 2


def test_resuming_mid_epoch_without_a_generator_replays_the_rest():
    data = TensorDataset(sg.arange(18.0).reshape(9, 2))
    sg.manual_seed(5)
    expected = order(DataLoader(data, batch_size=2, shuffle=True))
    sg.manual_seed(5)
    interrupted = DataLoader(data, batch_size=2, shuffle=True)
    seen = [batch[0].data[:, 0].tolist() for batch in itertools.islice(iter(interrupted), 2)]
    resumed = DataLoader(data, batch_size=2, shuffle=True)
    resumed.load_state_dict(interrupted.state_dict())
    assert seen + order(resumed) == expected


@pytest.mark.torch
def test_unshuffled_batches_equal_pytorchs():
    torch = require_torch()
    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    labels = np.arange(10) % 4
    for drop_last in (False, True):
        ours = DataLoader(TensorDataset(sg.tensor(values), sg.tensor(labels)), batch_size=4,
                          drop_last=drop_last)
        their_data = torch.utils.data.TensorDataset(torch.tensor(values), torch.tensor(labels))
        theirs = torch.utils.data.DataLoader(their_data, batch_size=4, drop_last=drop_last)
        assert len(ours) == len(theirs)
        for (x, y), (tx, ty) in zip(ours, theirs):
            np.testing.assert_array_equal(x.data, tx.numpy())
            np.testing.assert_array_equal(y.data, ty.numpy())
            assert y.dtype == np.dtype(str(ty.dtype).removeprefix("torch."))
