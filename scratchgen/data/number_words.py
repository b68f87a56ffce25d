"""A procedurally generated translation task: English number words to digits.

    "three hundred twelve"      -> "312"
    "forty two thousand seven"  -> "42007"

Numbers run from 0 to 999,999, written without hyphens and without "and". Sources are words
(a vocabulary of 31 words and <pad>), targets are digits between <bos> and <eos>:

    source  "forty two thousand seven"   -> [forty, two, thousand, seven, <pad>, ...]   (N, 9)
    target  "42007"                       -> [<bos>, 4, 2, 0, 0, 7, <eos>, <pad>]        (N, 8)

The numbers are drawn from a seed: a digit count d in 1..6 with probability d / 21 (short
numbers are few but must be learnt too), a leading digit uniform on 1..9 (a one-digit number may
be 0), and every other digit 0 with probability ``ZERO_RATE``, otherwise uniform on 0..9 — so
numbers with inner zeros ("forty two thousand seven"), the hard cases, are common.

The splits share no number: a seeded coin gives every number from 0 to 999,999 to one split
(train 90%, validation 5%, test 5%), and each split draws from the numbers it owns — validation
and test without repeats, training with them (there are only ten one-digit numbers, and one
draw in 21 has one digit). So every test number, e.g. "ninety one", is one the model never saw
as a whole sentence.

``words_to_number`` is the exact inverse of ``number_to_words`` (a strict parser: it rejects what
``number_to_words`` never writes), which is how the generator is tested.
"""
import dataclasses
import functools

import numpy as np

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen").split()
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
LARGEST = 999_999
MAX_DIGITS = 6
MAX_WORDS = 9         # "seven hundred seventy seven thousand seven hundred seventy seven"
ZERO_RATE = 0.25      # chance that a digit after the leading one is forced to 0
DIGIT_COUNT_PROBABILITIES = np.arange(1, MAX_DIGITS + 1) / np.arange(1, MAX_DIGITS + 1).sum()   # d / 21
SPLITS = ("train", "valid", "test")
SPLIT_SHARES = (0.90, 0.05, 0.05)   # the share of all numbers each split owns

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
PAD_INDEX = 0         # the padding index of both vocabularies


# ---- numbers and words ---------------------------------------------------------------------------
def _below_thousand(number):
    """The words of 1 <= number <= 999."""
    hundreds, rest = divmod(number, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if 0 < rest < 20:
        words.append(ONES[rest])
    elif rest >= 20:
        words.append(TENS[rest // 10])
        if rest % 10:
            words.append(ONES[rest % 10])
    return words


def number_to_words(number):
    """``number`` (0..999,999) in English words: 42007 -> "forty two thousand seven"."""
    if not 0 <= number <= LARGEST:
        raise ValueError(f"number_to_words: expected an integer in [0, {LARGEST}], got {number}")
    if number == 0:
        return "zero"
    thousands, rest = divmod(int(number), 1000)
    words = (_below_thousand(thousands) + ["thousand"]) if thousands else []
    return " ".join(words + (_below_thousand(rest) if rest else []))


def _parse_below_thousand(words, position):
    """Read ``[unit hundred] [tens [unit] | unit-or-teen]`` from ``words[position:]``:
    (its value, 0 if nothing was read, and the position after it)."""
    value, size = 0, len(words)
    if position + 1 < size and words[position] in ONES[1:10] and words[position + 1] == "hundred":
        value, position = 100 * ONES.index(words[position]), position + 2
    if position < size and words[position] in TENS[2:]:
        value, position = value + 10 * TENS.index(words[position]), position + 1
        if position < size and words[position] in ONES[1:10]:
            value, position = value + ONES.index(words[position]), position + 1
    elif position < size and words[position] in ONES[1:]:
        value, position = value + ONES.index(words[position]), position + 1
    return value, position


def words_to_number(text):
    """The inverse of ``number_to_words``: "forty two thousand seven" -> 42007.

    Strict: a sequence that ``number_to_words`` would not write ("twenty twenty", "hundred",
    "one thousand thousand") raises ValueError.
    """
    words = text.split()
    if words == ["zero"]:
        return 0
    number, position = _parse_below_thousand(words, 0)
    if number and position < len(words) and words[position] == "thousand":
        low, position = _parse_below_thousand(words, position + 1)
        number = 1000 * number + low
    if number == 0 or position != len(words):
        raise ValueError(f"words_to_number: expected English number words from 'zero' to "
                         f"'{number_to_words(LARGEST)}', got {text!r}")
    return number


# ---- vocabularies --------------------------------------------------------------------------------
class Vocabulary:
    """Tokens <-> indices; index 0 is <pad>. ``encode`` pads a batch of token lists to one width."""

    def __init__(self, tokens):
        self.tokens = tuple(tokens)
        self.index = {token: position for position, token in enumerate(self.tokens)}
        if self.tokens[PAD_INDEX] != PAD or len(self.index) != len(self.tokens):
            raise ValueError(f"Vocabulary: expected distinct tokens with {PAD} first, got {self.tokens}")

    def __len__(self):
        return len(self.tokens)

    def encode(self, sequences, width=None):
        """(N, width) int64 indices of token lists, padded with <pad> (width: the longest by default)."""
        width = max(map(len, sequences), default=0) if width is None else width
        indices = np.full((len(sequences), width), PAD_INDEX, dtype=np.int64)
        for row, tokens in enumerate(sequences):
            unknown = [token for token in tokens if token not in self.index]
            if unknown or len(tokens) > width:
                raise ValueError(f"Vocabulary.encode: expected at most {width} tokens of {self.tokens[1:]}, "
                                 f"got {tokens}")
            indices[row, :len(tokens)] = [self.index[token] for token in tokens]
        return indices

    def decode(self, indices):
        """The tokens of one row of indices, without padding."""
        return [self.tokens[index] for index in indices if index != PAD_INDEX]


SOURCE_VOCABULARY = Vocabulary([PAD] + list(ONES) + list(TENS[2:]) + ["hundred", "thousand"])
TARGET_VOCABULARY = Vocabulary([PAD, BOS, EOS] + [str(digit) for digit in range(10)])


def tokenize(text):
    """A sentence as source words: lower case, hyphens read as spaces ("Forty-two" -> [forty, two])."""
    return text.lower().replace("-", " ").split()


def encode_sources(sentences, width=None):
    """(N, width) source indices of sentences (strings)."""
    return SOURCE_VOCABULARY.encode([tokenize(sentence) for sentence in sentences], width)


def encode_targets(numbers):
    """(N, MAX_DIGITS + 2) target indices: <bos> digits <eos> <pad>..."""
    return TARGET_VOCABULARY.encode([[BOS, *str(int(number)), EOS] for number in numbers], MAX_DIGITS + 2)


def decode_digits(indices):
    """The digit string of a decoder output row: its tokens up to the first <eos>, digits only."""
    digits = []
    for token in TARGET_VOCABULARY.decode(indices):
        if token == EOS:
            break
        if token != BOS:
            digits.append(token)
    return "".join(digits)


# ---- the data set --------------------------------------------------------------------------------
def draw_numbers(count, generator):
    """``count`` numbers from the task's distribution (repeats possible; see the module docstring)."""
    lengths = generator.choice(np.arange(1, MAX_DIGITS + 1), size=count, p=DIGIT_COUNT_PROBABILITIES)
    digits = generator.integers(0, 10, size=(count, MAX_DIGITS))
    digits[generator.random((count, MAX_DIGITS)) < ZERO_RATE] = 0
    digits[:, 0] = np.where(lengths > 1, generator.integers(1, 10, size=count), digits[:, 0])
    places = lengths[:, None] - 1 - np.arange(MAX_DIGITS)     # digit i's place value is 10^(length - 1 - i)
    return np.where(places >= 0, digits * 10 ** np.maximum(places, 0), 0).sum(axis=1)


def split_owners(generator):
    """(LARGEST + 1,) int: the index in ``SPLITS`` of the split that owns each number."""
    return np.searchsorted(np.cumsum(SPLIT_SHARES), generator.random(LARGEST + 1) * sum(SPLIT_SHARES),
                           side="right")


def draw_split(count, owner, owners, generator, distinct):
    """``count`` numbers drawn from those ``owners`` gives to split ``owner``, in draw order."""
    numbers = []
    while len(numbers) < count:
        drawn = draw_numbers(4 * count, generator)
        numbers.extend(drawn[owners[drawn] == owner].tolist())
        if distinct:
            numbers = list(dict.fromkeys(numbers))  # drop repeats, keep the order
    return np.array(numbers[:count], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class TranslationData:
    """Source/target index arrays of a translation task, split three ways, as the runner expects
    of a data set (``name``, ``train_arrays``, ``subset``); the numbers themselves ride along."""
    name: str
    train_source: np.ndarray   # (N_train, MAX_WORDS) int64
    train_target: np.ndarray   # (N_train, MAX_DIGITS + 2) int64
    train_numbers: np.ndarray  # (N_train,) int64
    valid_source: np.ndarray
    valid_target: np.ndarray
    valid_numbers: np.ndarray
    test_source: np.ndarray
    test_target: np.ndarray
    test_numbers: np.ndarray
    source_vocabulary: Vocabulary = SOURCE_VOCABULARY
    target_vocabulary: Vocabulary = TARGET_VOCABULARY

    @property
    def train_arrays(self):
        """What the training loop batches: (source, target)."""
        return self.train_source, self.train_target

    def split(self, name):
        """(source, target, numbers) of "train", "valid" or "test"."""
        return tuple(getattr(self, f"{name}_{part}") for part in ("source", "target", "numbers"))

    def subset(self, train=None, test=None):
        """The first ``train`` training and ``test`` validation and test pairs (a dry run)."""
        sizes = {"train": train, "valid": test, "test": test}
        return dataclasses.replace(self, **{f"{split}_{part}": getattr(self, f"{split}_{part}")[:size]
                                            for split, size in sizes.items()
                                            for part in ("source", "target", "numbers")})


@functools.lru_cache(maxsize=4)
def load_number_words(train=20_000, valid=1_000, test=2_000, seed=0):
    """The task's splits (read-only arrays), the same for the same sizes and seed."""
    generator = np.random.Generator(np.random.PCG64(seed))
    owners = split_owners(generator)
    arrays = {}
    for owner, (name, count) in enumerate(zip(SPLITS, (train, valid, test))):
        numbers = draw_split(count, owner, owners, generator, distinct=name != "train")
        arrays[f"{name}_source"] = encode_sources([number_to_words(number) for number in numbers], MAX_WORDS)
        arrays[f"{name}_target"] = encode_targets(numbers)
        arrays[f"{name}_numbers"] = numbers
    for array in arrays.values():
        array.flags.writeable = False  # shared by every caller through the cache
    return TranslationData("number-words", **arrays)
