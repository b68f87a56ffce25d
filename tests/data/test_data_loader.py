"""The seeded, resumable DataLoader (the runner's use of scratchgen.utils.data.DataLoader: NumPy arrays
in, NumPy arrays out, its own generator)."""
import itertools
import json

import numpy as np
import pytest

from scratchgen import Generator
from scratchgen.data import DataLoader, TensorDataset


def epoch_indices(loader):
    return [batch[0].tolist() for batch in loader]


def make_loader(size=10, batch_size=3, seed=0, shuffle=True, **options):
    return DataLoader(TensorDataset(np.arange(size), np.arange(size) * 10), batch_size=batch_size,
                      shuffle=shuffle, generator=Generator(seed), **options)


def test_each_epoch_is_a_fresh_permutation_in_batches():
    loader = make_loader(seed=1)
    assert len(loader) == 4
    first, second = epoch_indices(loader), epoch_indices(loader)
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(sum(first, [])) == list(range(10)) == sorted(sum(second, []))
    assert first != second
    for values, scaled in loader:  # the arrays stay aligned
        np.testing.assert_array_equal(scaled, values * 10)


def test_same_seed_same_order_and_other_seed_other_order():
    assert epoch_indices(make_loader(seed=5)) == epoch_indices(make_loader(seed=5))
    assert epoch_indices(make_loader(seed=5)) != epoch_indices(make_loader(seed=6))


def test_drop_last_and_no_shuffle():
    loader = make_loader(drop_last=True, shuffle=False)
    assert len(loader) == 3 and epoch_indices(loader) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


@pytest.mark.parametrize("stop_after", [0, 1, 3, 4])
def test_resuming_mid_epoch_replays_exactly_the_remaining_batches(stop_after):
    straight = make_loader(seed=3)
    expected = epoch_indices(straight) + epoch_indices(straight)

    interrupted = make_loader(seed=3)
    seen = [batch[0].tolist() for batch in itertools.islice(iter(interrupted), stop_after)]
    state = json.loads(json.dumps(interrupted.state_dict()))  # what a checkpoint's meta holds
    assert state["position"] == stop_after
    resumed = make_loader(seed=999)  # the seed is overridden by the saved state
    resumed.load_state_dict(state)
    # the rest of epoch 1 (nothing when the stop came after its last batch), then epoch 2
    seen += epoch_indices(resumed) + epoch_indices(resumed)
    assert seen == expected


def test_state_between_epochs_continues_the_stream():
    loader = make_loader(seed=2)
    epoch_indices(loader)
    state = loader.state_dict()
    assert state["position"] == 0
    following = epoch_indices(loader)
    restored = make_loader(seed=0)
    restored.load_state_dict(state)
    assert epoch_indices(restored) == following


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="one length"):
        TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="positive int batch_size"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(ValueError, match="make no batch"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=4, drop_last=True)
    with pytest.raises(TypeError, match="scratchgen.Generator"):
        DataLoader(TensorDataset(np.zeros(3)), generator=np.random.default_rng(0))
