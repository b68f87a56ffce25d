"""The Kneser-Ney n-gram: a hand-computed example, probabilities that sum to one over the
vocabulary, checkpoints that restore it, and ``scratchgen train ngram`` end to end."""
import json

import numpy as np
import pytest

from scratchgen import cli
from scratchgen.data.text import load_text
from scratchgen.models.ngram import KneserNey, as_key, modified_discounts


@pytest.fixture(scope="module")
def fitted():
    data = load_text()
    model = KneserNey(len(data.vocabulary), order=5)
    model.fit(data.train_ids[:200_000])
    return data, model


def test_a_bigram_model_of_abab_by_hand():
    """ids a = 1, b = 2 (0 is <unk>). Bigram counts ab: 2, ba: 1, so order 2 has n1 = n2 = 1:
    Y = 1/3, D1 = 1/3, D2 = 1. Unigram continuation counts a: 1, b: 1 (n1 = 2): Y = 1/2, D1 = 1/2.
    p1(a) = (1 - 1/2 + 1 * 1/3) / 2 = 5/12, p1(<unk>) = (1/3) / 2 = 1/6;
    p2(b | a) = (2 - 1 + 1 * 5/12) / 2 = 17/24, p2(a | a) = 5/24, p2(<unk> | a) = 1/12."""
    model = KneserNey(vocabulary_size=3, order=2)
    model.fit(np.array([1, 2, 1, 2]))
    assert model.discounts[2][1:3] == pytest.approx((1 / 3, 1.0))
    a = as_key([1])
    np.testing.assert_allclose(model.distribution(""), [1 / 6, 5 / 12, 5 / 12])
    np.testing.assert_allclose(model.distribution(a), [1 / 12, 5 / 24, 17 / 24])
    assert model.probability(a, as_key([2])) == pytest.approx(17 / 24)
    # "b" was never followed by "b" and is a context seen once: p2(b | b) = (0 + D1 * 1 * 5/12) / 1
    assert model.probability(as_key([2]), as_key([2])) == pytest.approx(5 / 36)


@pytest.mark.parametrize("context", ["", "d", "def ", "self.", "    return ", "\x00\x00zq", "zzzzzzzz"])
def test_probabilities_sum_to_one_over_the_vocabulary(fitted, context):
    data, model = fitted
    key = as_key(data.vocabulary.encode(context))
    distribution = model.distribution(key)
    assert distribution.shape == (len(data.vocabulary),) and (distribution > 0).all()
    assert distribution.sum() == pytest.approx(1.0, abs=1e-12)
    for symbol in (0, 1, int(np.argmax(distribution))):
        assert model.probability(key, chr(symbol)) == pytest.approx(distribution[symbol], rel=1e-12)


def test_discounts_follow_chen_and_goodman():
    counts = {str(i): count for i, count in enumerate([1] * 40 + [2] * 20 + [3] * 10 + [4] * 5 + [9] * 3)}
    y = 40 / (40 + 2 * 20)
    assert modified_discounts(counts) == pytest.approx((0, 1 - 2 * y * 20 / 40, 2 - 3 * y * 10 / 20,
                                                        3 - 4 * y * 5 / 10))


def test_a_checkpoint_restores_the_model(fitted):
    data, model = fitted
    restored = KneserNey(len(data.vocabulary), order=5)
    restored.load_state_dict(model.state_dict())
    ids = data.valid_ids[:2000]
    assert restored.total_nats(ids) == model.total_nats(ids)
    with pytest.raises(RuntimeError, match="missing keys"):
        restored.load_state_dict({"grams_1": np.zeros((0, 1))})


def test_cli_trains_and_samples(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "ngram", "--dry-run", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    provenance = config["data_provenance"]
    assert provenance["corpus"] == "python-stdlib" and len(provenance["files"]) == 20
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["valid_bpc"] > 0 and final["valid_characters"] == 64 * 64
    assert final["corpus_matches_recorded"] == provenance["matches_recorded"]
    assert (run / "samples.txt").read_text().startswith("\n")
    capsys.readouterr()
    assert cli.main(["sample", "ngram", "--checkpoint", str(run), "--prompt", "import ", "--length", "40"]) \
        == 0
    out = capsys.readouterr().out
    assert out.startswith("import ") and len(out) == len("import ") + 40 + 1
