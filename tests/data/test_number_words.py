"""The number-words task: words <-> numbers round-trip, the parser is strict, the splits are fixed
and disjoint, and the index arrays say what the words say."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgen.data.number_words import (LARGEST, MAX_DIGITS, MAX_WORDS, SOURCE_VOCABULARY,
                                          TARGET_VOCABULARY, decode_digits, draw_numbers, load_number_words,
                                          number_to_words, tokenize, words_to_number)

# all sizes, plus round thousands and the zeros inside ("forty two thousand seven")
numbers = st.one_of(st.integers(0, 999), st.integers(0, LARGEST),
                    st.builds(lambda high, low: 1000 * high + low, st.integers(1, 999),
                              st.sampled_from([0, 1, 7, 10, 20])))


@pytest.mark.parametrize("number, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (312, "three hundred twelve"),
    (1000, "one thousand"), (42007, "forty two thousand seven"), (100010, "one hundred thousand ten"),
    (999999, "nine hundred ninety nine thousand nine hundred ninety nine"),
])
def test_known_numbers(number, words):
    assert number_to_words(number) == words
    assert words_to_number(words) == number


@settings(deadline=None, max_examples=50)
@given(numbers)
def test_words_round_trip(number):
    words = number_to_words(number)
    assert words_to_number(words) == number
    assert "-" not in words and "and" not in words.split()
    assert 1 <= len(words.split()) <= MAX_WORDS


def test_every_number_below_a_thousand_round_trips():
    assert [words_to_number(number_to_words(n)) for n in range(1000)] == list(range(1000))


@pytest.mark.parametrize("text", ["", "hundred", "thousand", "twenty twenty", "one thousand thousand",
                                  "ten two", "zero zero", "one zero", "twelve hundred",
                                  "seven thousand zero"])
def test_parser_rejects_what_the_writer_never_writes(text):
    with pytest.raises(ValueError, match="words_to_number: expected"):
        words_to_number(text)


def test_out_of_range_numbers_are_refused():
    for number in (-1, LARGEST + 1):
        with pytest.raises(ValueError, match="number_to_words: expected"):
            number_to_words(number)


def test_draws_are_seeded_and_cover_every_length():
    def draw(seed):
        return draw_numbers(3000, np.random.Generator(np.random.PCG64(seed)))
    first = draw(3)
    assert np.array_equal(first, draw(3)) and not np.array_equal(first, draw(4))
    assert first.min() >= 0 and first.max() <= LARGEST
    lengths = np.bincount([len(str(number)) for number in first], minlength=MAX_DIGITS + 1)[1:]
    assert (lengths > 0).all() and lengths[-1] > lengths[0]   # d digits with probability d / 21


def test_splits_are_fixed_disjoint_and_encode_their_numbers():
    data = load_number_words(train=600, valid=100, test=200, seed=1)
    splits = [set(data.split(name)[2].tolist()) for name in ("train", "valid", "test")]
    assert len(data.train_numbers) == 600 and [len(s) for s in splits[1:]] == [100, 200]  # held-out: distinct
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    source, target, numbers = data.split("test")
    assert source.shape == (200, MAX_WORDS) and target.shape == (200, MAX_DIGITS + 2)
    for row_source, row_target, number in zip(source, target, numbers):
        assert " ".join(SOURCE_VOCABULARY.decode(row_source)) == number_to_words(number)
        assert decode_digits(row_target) == str(number)
        assert TARGET_VOCABULARY.tokens[row_target[0]] == "<bos>"
    assert np.array_equal(load_number_words(train=600, valid=100, test=200, seed=1).test_numbers, numbers)
    small = data.subset(train=10, test=5)
    assert len(small.train_arrays[0]) == 10 and len(small.valid_source) == 5 and len(small.test_numbers) == 5


def test_tokenize_and_vocabulary():
    assert tokenize("Forty-Two  thousand") == ["forty", "two", "thousand"]
    assert len(SOURCE_VOCABULARY) == 31 and len(TARGET_VOCABULARY) == 13
    with pytest.raises(ValueError, match="Vocabulary.encode: expected"):
        SOURCE_VOCABULARY.encode([["fourty"]])
    assert decode_digits(TARGET_VOCABULARY.encode([["<bos>", "4", "2", "<eos>", "7"]])[0]) == "42"
