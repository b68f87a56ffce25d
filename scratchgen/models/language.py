"""What the language models (``ngram``, ``charlstm``, ``gpt``) share: the text data, scoring in
bits per character, and seeded sampling with temperature and top-k.

Every model is scored the same way: the mean over the validation characters 2..N of
-log2 p(character | what precedes it), each model conditioning on as much of the preceding
validation text as it can use (the n-gram its n-1 characters, the LSTM its stream so far, the
GPT at least half its window). A model draws text one character at a time through two methods its
recipe defines — ``start(ids)`` reads a prompt, ``advance(state, id)`` reads one more character, both
return the state and the log-probabilities of the next character — and ``generate`` does the
rest.
"""
import dataclasses
import math

import numpy as np

from .. import nn
from ..autograd import no_grad
from ..data.text import CORPUS_NAME, load_text
from ..random import generator
from .base import Recipe, TrainConfig, option, set_hyperparameters

LN2 = math.log(2)
DRY_RUN_SAMPLE_LENGTH = 40   # characters per sample in a dry run (a smoke test, not a demonstration)


@dataclasses.dataclass
class TextConfig(TrainConfig):
    data: str = option(CORPUS_NAME, '"python-stdlib" (embedded: 20 standard library modules) or "text:PATH"')
    sample_length: int = option(300, "characters of each sample drawn at the end of training")


@dataclasses.dataclass
class TextSampleOptions:
    """``scratchgen sample MODEL``'s flags for a text model."""
    prompt: str = option("\n", "the text to continue (printed first)")
    temperature: float = option(1.0, "divides the log-probabilities: < 1 sharper, > 1 flatter, 0 greedy")
    top_k: int = option(0, "draw among the k most likely characters only (0: all of them)")
    length: int = option(500, "characters to draw after the prompt")


def choose(log_probs, temperature=1.0, top_k=0):
    """An id drawn from softmax(log_probs / temperature), restricted to the ``top_k`` most likely
    ids (all of them when 0), with the global generator; temperature 0 takes the most likely."""
    scores = np.asarray(log_probs, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(scores))
    scores = scores / temperature
    if 0 < top_k < len(scores):
        threshold = np.partition(scores, -top_k)[-top_k]
        scores = np.where(scores >= threshold, scores, -np.inf)
    cumulative = np.cumsum(np.exp(scores - scores.max()))
    drawn = np.searchsorted(cumulative, generator().random() * cumulative[-1], side="right")
    return int(min(drawn, len(scores) - 1))


def check_sampling(length, temperature, top_k):
    if length < 0 or temperature < 0 or top_k < 0:
        raise ValueError(f"sample: expected length, temperature and top_k >= 0, got {length}, {temperature} "
                         f"and {top_k}")


class TextRecipe(Recipe):
    """A recipe over ``scratchgen.data.text``; subclasses define ``context_length``,
    ``total_nats``, ``start`` and ``advance`` (and the usual ``train_step``)."""
    Config = TextConfig
    SampleOptions = TextSampleOptions
    samples_are_images = False
    final_samples = 3                # samples.txt at the end of training: three of sample_length characters
    plot_keys = ("bpc", "valid_bpc")
    unused_options = ("image_size",)

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.vocabulary = data.vocabulary

    @classmethod
    def context_length(cls, config):
        """Characters per training window."""
        raise NotImplementedError(f"{cls.__name__} must implement context_length")

    @classmethod
    def load_data(cls, config):
        return load_text(config.data, cls.context_length(config))

    def before_step(self, clock):
        """The neural models' learning rate for this step, ``learning_rate(clock)`` (their schedule;
        the n-gram model counts, with no optimizer)."""
        if "model" in self.optimizers:
            set_hyperparameters(self.optimizers["model"], lr=self.learning_rate(clock))

    def optimize(self, loss):
        """The neural models' update: backpropagate ``loss``, clip the gradient's norm at
        ``config.clip_norm`` (0: no clipping), step the optimizer (at the learning rate
        ``before_step`` set); returns the step's metrics (nats and bits per character)."""
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        if self.config.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        optimizer.step()
        return {"loss": loss.item(), "bpc": loss.item() / LN2}

    # ---- scoring -----------------------------------------------------------------------------------
    def total_nats(self, ids):
        """sum over i = 1..N-1 of -ln p(ids[i] | ids[:i]) (as much of it as the model reads)."""
        raise NotImplementedError(f"{type(self).__name__} must implement total_nats")

    def bits_per_character(self, ids):
        with no_grad():
            return self.total_nats(ids) / (len(ids) - 1) / LN2

    def validate(self, data):
        return {"valid_bpc": self.bits_per_character(data.valid_ids)}

    def evaluate(self, data):
        report = {**self.validate(data), "valid_characters": len(data.valid_ids) - 1}
        if "matches_recorded" in data.provenance:
            report["corpus_matches_recorded"] = data.provenance["matches_recorded"]
        return report

    # ---- sampling ----------------------------------------------------------------------------------
    def start(self, ids):
        """(state, log-probabilities (V,) of the next character) after reading ``ids`` (non-empty)."""
        raise NotImplementedError(f"{type(self).__name__} must implement start")

    def advance(self, state, next_id):
        """(state, log-probabilities of the next character) after reading one more character."""
        raise NotImplementedError(f"{type(self).__name__} must implement advance")

    def generate(self, prompt, length, temperature=1.0, top_k=0):
        """Yield ``length`` characters continuing ``prompt``, drawn with ``choose``."""
        check_sampling(length, temperature, top_k)
        if not prompt:
            raise ValueError("sample: expected a non-empty prompt (e.g. a newline)")
        with no_grad():
            state, log_probs = self.start(self.vocabulary.encode(prompt))
            for position in range(length):
                next_id = choose(log_probs, temperature, top_k)
                yield self.vocabulary.characters[next_id]
                if position + 1 < length:
                    state, log_probs = self.advance(state, next_id)

    def sample(self, n, prompt="\n", temperature=1.0, top_k=0, length=None):
        """``n`` texts: ``prompt`` and ``length`` characters after it (default: the config's
        ``sample_length``). The defaults draw from the very distribution ``valid_bpc`` scores."""
        if length is None:
            length = DRY_RUN_SAMPLE_LENGTH if self.dry_run else self.config.sample_length
        return [prompt + "".join(self.generate(prompt, length, temperature, top_k)) for _ in range(n)]

    # ---- state: the vocabulary travels with the weights ----------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), "vocabulary": self.vocabulary.code_points()}

    def load_state_dict(self, state, weights_only=False):
        saved = state.get("vocabulary")
        if saved is not None and not np.array_equal(saved, self.vocabulary.code_points()):
            raise ValueError(f"{self.name}: the checkpoint's vocabulary ({len(saved)} characters) is not the "
                             f"one of the data {self.config.data!r} ({len(self.vocabulary)} characters); was "
                             "it trained on another text or Python version?")
        super().load_state_dict(state, weights_only)
