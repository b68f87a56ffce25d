"""``scratchgen train ngram``: an interpolated Kneser-Ney character n-gram model (n = 5), the
honest baseline the neural language models must beat.

The model (Chen & Goodman 1998, interpolated Kneser-Ney with their three discounts per order,
"modified" KN): for the context h of the n-1 previous characters and h' = h without its first,

    p_k(w | h) = max(c(h w) - D_k(c(h w)), 0) / c(h .)  +  gamma(h) p_{k-1}(w | h')
    gamma(h)   = (D_k1 N_1(h .) + D_k2 N_2(h .) + D_k3 N_3+(h .)) / c(h .)
    p_0(w)     = 1 / V                                           (the floor: every character, <unk> too)

At the highest order c(h w) is how often h w occurs in the training text. Below it, c is the
*continuation* count N_1+(. h w): how many different characters precede h w. A character that
follows many different contexts is a good guess after an unseen one; one that is frequent only
inside a single long context is not. c(h .) = sum_w c(h w), N_j(h .) = the number of w with
c(h w) = j (N_3+: 3 or more), and D_k(c) = 0, D_k1, D_k2, D_k3 for c = 0, 1, 2, 3+. A context
never seen at order k gives all its mass to order k-1. Each order's discounts come from its
counts of counts n_j (the number of k-grams with count j):

    Y = n_1 / (n_1 + 2 n_2),  D_k1 = 1 - 2 Y n_2 / n_1,  D_k2 = 2 - 3 Y n_3 / n_2,  D_k3 = 3 - 4 Y n_4 / n_3

How it fits the training frame: training is counting, so the recipe's loader hands over the
whole training text as one batch and ``train_step`` counts it (one epoch of one step; more
epochs count the same text again and change nothing). The counts are the model's state:
buffers ``grams_k`` (M_k, k) and ``counts_k`` (M_k,) for every order k, saved in ``last.npz``
like any weights; the probability tables are rebuilt from them on loading.

Inside, a k-gram is a string of k characters chr(id), so that slicing, counting and hashing run
at the speed of Python's own strings.
"""
import collections
import dataclasses
import math

import numpy as np

from .. import nn
from ..data import DataLoader, TensorDataset
from ..tensor import tensor
from .base import option, register
from .language import TextConfig, TextRecipe

COUNT_CLASSES = 3   # discounts for counts 1, 2 and "3 or more"


@dataclasses.dataclass
class NGramConfig(TextConfig):
    epochs: int = option(1, "counting needs one pass over the training text")
    batch_size: int = option(1, "not used: the whole training text is one batch")
    order: int = option(5, "n: the next character given the n-1 before it")


def as_key(ids):
    """Character ids as a string of chr(id), the tables' key type."""
    return "".join(map(chr, np.asarray(ids).tolist()))


def count_grams(text, order):
    """{k: Counter of every k-gram of ``text``} for k = 1..order."""
    return {k: collections.Counter(text[i:i + k] for i in range(len(text) - k + 1))
            for k in range(1, order + 1)}


def continuation_counts(longer):
    """N_1+(. g) for every g: how many distinct (k+1)-grams of ``longer`` end in the k-gram g."""
    return collections.Counter(gram[1:] for gram in longer)


def modified_discounts(counts):
    """(0, D_1, D_2, D_3+) from the counts of counts of ``counts`` (Chen & Goodman's estimates;
    a count of counts that is 0, as in a tiny text, is taken as 1 so nothing divides by zero)."""
    of_counts = collections.Counter(counts.values())
    n1, n2, n3, n4 = (max(of_counts[j], 1) for j in range(1, COUNT_CLASSES + 2))
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return (0.0,) + tuple(min(max(d, 0.0), j) for j, d in enumerate(discounts, 1))


def context_table(counts, discounts):
    """{context h: (followers {w: c(h w)}, c(h .), gamma(h) c(h .))} of one order's counts."""
    followers = collections.defaultdict(dict)
    for gram, count in counts.items():
        followers[gram[:-1]][gram[-1]] = count
    table = {}
    for context, following in followers.items():
        classes = collections.Counter(min(count, COUNT_CLASSES) for count in following.values())
        backoff_mass = sum(discounts[j] * classes[j] for j in range(1, COUNT_CLASSES + 1))
        table[context] = (following, sum(following.values()), backoff_mass)
    return table


class KneserNey(nn.Module):
    """p(next character | the order-1 before it); ``fit(ids)`` counts a text."""

    def __init__(self, vocabulary_size, order=5):
        super().__init__()
        if order < 1:
            raise ValueError(f"KneserNey: expected order >= 1, got {order}")
        self.vocabulary_size, self.order = vocabulary_size, order
        for k in range(1, order + 1):
            self.register_buffer(f"grams_{k}", tensor(np.zeros((0, k), dtype=np.int64)))
            self.register_buffer(f"counts_{k}", tensor(np.zeros(0, dtype=np.int64)))
        self._build({k: {} for k in range(1, order + 1)})

    # ---- counting ----------------------------------------------------------------------------------
    def fit(self, ids):
        """Count every k-gram of ``ids`` (k = 1..order) and rebuild the tables."""
        counts = count_grams(as_key(ids), self.order)
        for k, grams in counts.items():
            setattr(self, f"grams_{k}", tensor(np.array([[ord(c) for c in gram] for gram in grams],
                                                        dtype=np.int64).reshape(-1, k)))
            setattr(self, f"counts_{k}", tensor(np.fromiter(grams.values(), dtype=np.int64,
                                                            count=len(grams))))
        self._build(counts)

    def load_state_dict(self, state_dict, strict=True):
        """Take the counts of a checkpoint (whatever their number) and rebuild the tables."""
        names = [name for name, _ in self._state_tensors()]
        missing = [name for name in names if name not in state_dict]
        if missing:
            raise RuntimeError(f"load_state_dict (KneserNey): missing keys {missing}")
        for name in names:
            setattr(self, name, tensor(np.asarray(state_dict[name], dtype=np.int64)))
        self._build({k: dict(zip(map(as_key, getattr(self, f"grams_{k}").numpy()),
                                 getattr(self, f"counts_{k}").numpy().tolist()))
                     for k in range(1, self.order + 1)})

    def _build(self, counts):
        """Per order k: the discounts and the context table of raw (k = order) or continuation counts."""
        self.discounts, self.tables = {}, {}
        for k in range(1, self.order + 1):
            order_counts = counts[k] if k == self.order else continuation_counts(counts[k + 1])
            self.discounts[k] = modified_discounts(order_counts)
            self.tables[k] = context_table(order_counts, self.discounts[k])

    # ---- probabilities -------------------------------------------------------------------------------
    def _contexts(self, context):
        """(order k, its context: the last k-1 characters) from order 1 up to what ``context`` allows."""
        for k in range(1, min(len(context), self.order - 1) + 2):
            yield k, context[len(context) - k + 1:]

    def probability(self, context, symbol):
        """p(symbol | context), both as key strings; the recursion from the floor 1/V upwards."""
        p = 1.0 / self.vocabulary_size
        for k, history in self._contexts(context):
            entry = self.tables[k].get(history)
            if entry is None:   # unseen here, so unseen at every higher order too
                break
            following, total, backoff_mass = entry
            count = following.get(symbol, 0)
            p = (max(count - self.discounts[k][min(count, COUNT_CLASSES)], 0.0) + backoff_mass * p) / total
        return p

    def distribution(self, context):
        """(V,) float64: p(w | context) for every character id w, by the same recursion."""
        p = np.full(self.vocabulary_size, 1.0 / self.vocabulary_size)
        for k, history in self._contexts(context):
            entry = self.tables[k].get(history)
            if entry is None:
                break
            following, total, backoff_mass = entry
            counts = np.zeros(self.vocabulary_size)
            counts[[ord(symbol) for symbol in following]] = list(following.values())
            discount = np.asarray(self.discounts[k])[np.minimum(counts, COUNT_CLASSES).astype(np.int64)]
            p = (np.maximum(counts - discount, 0.0) + backoff_mass * p) / total
        return p

    def total_nats(self, ids):
        """sum over i >= 1 of -ln p(ids[i] | the order-1 ids before it)."""
        text, reach = as_key(ids), self.order - 1
        return -sum(math.log(self.probability(text[max(i - reach, 0):i], text[i]))
                    for i in range(1, len(text)))


@register
class NGramRecipe(TextRecipe):
    name = "ngram"
    unused_options = ("image_size", "lr", "batch_size")   # counting: no optimizer, one batch
    Config = NGramConfig
    plot_keys = ("valid_bpc",)
    has_gradient_step = False   # it counts n-grams

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.model = KneserNey(len(data.vocabulary), config.order)

    @classmethod
    def context_length(cls, config):
        return 64   # only sizes a dry run's share of the text: the loader hands over all of it at once

    def make_loader(self, data, seed):
        """The whole training text as one batch."""
        return DataLoader(TensorDataset(data.train_ids[None, :]), batch_size=1)

    def train_step(self, batch, clock):
        (text,) = batch
        self.model.fit(text.numpy()[0])
        return {"ngrams": float(len(getattr(self.model, f"counts_{self.model.order}")))}  # distinct n-grams

    def total_nats(self, ids):
        return self.model.total_nats(ids)

    def start(self, ids):
        return self.advance(as_key(ids), None)

    def advance(self, state, next_id):
        text = state if next_id is None else state + chr(next_id)
        text = text[max(len(text) - self.model.order + 1, 0):]   # the context the model reads
        with np.errstate(divide="ignore"):
            return text, np.log(self.model.distribution(text))
