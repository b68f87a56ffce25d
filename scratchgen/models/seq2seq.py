"""``scratchgen train seq2seq``: an LSTM encoder-decoder with attention, number words -> digits.

It translates English number words into digits ("forty two thousand seven" -> "42007"; the task
is ``scratchgen.data.number_words``; results in docs/seq2seq.md).

The model (Sutskever et al. 2014; Bahdanau et al. 2015; attention as Luong et al. 2015, "general")
    encoder   words -> embedding -> bidirectional LSTM (the fused op, H/2 per direction)
              -> states s_1..s_S (B, S, H), the two directions side by side
    decoder   h_0 = [forward state after the last word; backward state after the first], c_0 = 0,
              h~_0 = 0; then one nn.LSTMCell step per output token y_t:
              h_t, c_t = LSTMCell([embed(y_{t-1}); h~_{t-1}], (h_{t-1}, c_{t-1}))   input feeding
              score_tj = h_t^T W_a s_j            -inf where j is padding
              a_t      = softmax_j(score_tj)       context_t = sum_j a_tj s_j
              h~_t     = tanh(W_c [context_t; h_t])
              p(y_t | y_<t, x) = softmax(W_o h~_t + b_o)
    loss      cross-entropy of the next digit (or <eos>), averaged over the target tokens (nats/token)

Padding is exact (``BidirectionalLSTM``): each row's padding comes after its words in both
directions, so a sentence's states do not depend on what it is batched with.

Teacher forcing feeds the gold previous digit with probability ``ratio`` (drawn per sentence and
step), the model's own greedy choice otherwise; ``ratio`` falls linearly from
``teacher_forcing_start`` to ``teacher_forcing_end`` over the epochs, so the decoder learns to
recover from its own mistakes. Decoding is greedy or by beam search (``beam_width``).
"""
import dataclasses
import math
import typing

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..autograd import no_grad
from ..data.number_words import (BOS, EOS, MAX_DIGITS, PAD_INDEX, SOURCE_VOCABULARY, TARGET_VOCABULARY,
                                 decode_digits, load_number_words, tokenize)
from ..nn.module import new_parameter
from ..ops.shape import cat, stack
from ..tensor import Tensor, arange, rand, tensor, zeros
from .base import Recipe, TrainConfig, option, register

BOS_INDEX, EOS_INDEX = TARGET_VOCABULARY.index[BOS], TARGET_VOCABULARY.index[EOS]


@dataclasses.dataclass
class Seq2SeqConfig(TrainConfig):
    epochs: int = option(5, "5 x 157 steps of 128 pairs: 75-180 s on one shared core")
    batch_size: int = option(128, "sentence pairs per optimizer step")
    lr: float = option(3e-3, "Adam")
    data: str = option("number-words", "the only task: English number words -> digits")
    train_size: int = option(20_000, "training pairs (validation 1,000 and test 2,000: fixed)")
    data_seed: int = option(0, "draws the numbers and the splits (apart from --seed)")
    embedding_dim: int = option(64, "word and digit embeddings")
    hidden: int = option(128, "decoder LSTM and attention width (H/2 per encoder direction)")
    teacher_forcing_start: float = option(1.0, "chance of feeding the gold previous digit, first epoch ...")
    teacher_forcing_end: float = option(0.5, "... falling linearly to this by the last epoch")
    clip_norm: float = option(1.0, "gradient norm clipping (0: none)")
    beam_width: int = option(4, "the final evaluation's beam search (and translate's default)")

    def __post_init__(self):
        if self.data != "number-words":
            raise ValueError(f"seq2seq: expected data 'number-words', got {self.data!r}")
        if self.hidden < 2 or self.hidden % 2:
            raise ValueError(f"seq2seq: expected an even hidden >= 2 (half per encoder direction), "
                             f"got {self.hidden}")
        for name in ("teacher_forcing_start", "teacher_forcing_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"seq2seq: expected {name} in [0, 1], got {getattr(self, name)}")
        check_beam_width(self.beam_width)


def check_beam_width(beam_width):
    if not 1 <= beam_width <= len(TARGET_VOCABULARY):
        raise ValueError(f"seq2seq: expected a beam width in [1, {len(TARGET_VOCABULARY)}], got {beam_width}")


# ---- encoder -------------------------------------------------------------------------------------
class BidirectionalLSTM(nn.Module):
    """One bidirectional LSTM layer over right-padded, time-major batches, exact under padding.

    Parameters as ``torch.nn.LSTM(input_size, hidden_size, bidirectional=True)`` names them
    (``weight_ih_l0``, ..., ``bias_hh_l0_reverse``), initialised U(-1/sqrt(H), 1/sqrt(H)) likewise.
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        for suffix in ("_l0", "_l0_reverse"):
            setattr(self, f"weight_ih{suffix}", new_parameter(4 * hidden_size, input_size))
            setattr(self, f"weight_hh{suffix}", new_parameter(4 * hidden_size, hidden_size))
            setattr(self, f"bias_ih{suffix}", new_parameter(4 * hidden_size))
            setattr(self, f"bias_hh{suffix}", new_parameter(4 * hidden_size))
        bound = 1 / math.sqrt(hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def _weights(self, suffix):
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return [tuple(getattr(self, f"{kind}{suffix}") for kind in kinds)]

    def forward(self, x, lengths):
        """x (S, B, I) padded at the end, ``lengths`` (B,) an int64 Tensor -> states (S, B, 2H), valid
        before each row's length, and final states (B, 2H): the forward direction's after the last word
        beside the backward direction's after the first.

        A row's padding comes after its words, so the forward direction reads every word before
        any padding: its states up to the row's length are exact. The backward direction reads
        each row reversed *within its length* (padding stays at the end), which is exact for the
        same reason; the same index map puts its states back in source order. (The map is made by
        ops on ``lengths``, so a compiled step makes each batch's.)
        """
        steps, batch = x.shape[0], x.shape[1]
        columns = arange(batch, device=x.device)
        forward_states, _ = F.lstm(x, self._weights("_l0"))                           # (S, B, H)
        positions = arange(steps, device=x.device).reshape(steps, 1)
        reversal = F.where(positions < lengths, lengths - 1 - positions, positions)     # (S, B): t -> L-1-t
        backward_states, _ = F.lstm(x[reversal, columns], self._weights("_l0_reverse"))
        backward_states = backward_states[reversal, columns]                            # source order again
        final = cat([forward_states[lengths - 1, columns], backward_states[0]], dim=-1)   # (B, 2H)
        return cat([forward_states, backward_states], dim=-1), final


class Encoder(nn.Module):
    def __init__(self, vocabulary_size, embedding_dim, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=PAD_INDEX)
        self.lstm = BidirectionalLSTM(embedding_dim, hidden // 2)

    def forward(self, source):
        """source (B, S) word indices -> states (B, S, H) (zero at padding), final states (B, H)
        and the mask (B, S) of real words."""
        mask = source != PAD_INDEX                   # ops, all of it: a compiled step reads each batch's
        lengths = mask.long().sum(dim=1)
        if to_numpy(lengths.data).min() == 0:       # checked when run eagerly (a replay runs no Python)
            raise ValueError("seq2seq: expected every source sentence to have at least one word")
        time_major = self.embedding(source.T)       # (S, B, E)
        states, final = self.lstm(time_major, lengths)
        states = F.where(mask.T.unsqueeze(-1), states, 0.0).permute(1, 0, 2)          # (B, S, H)
        return states, final, mask


def trim_padding(target):
    """(B, W) target tokens cut after the column where the longest row's <eos> is: no decoder step
    past it (the loss ignores <pad>, so the steps cut would change nothing but the cost)."""
    return target[:, :int((np.asarray(target) != PAD_INDEX).sum(axis=1).max())]


def to_numpy(array):
    """A host NumPy copy of a NumPy or CuPy array (index maps are built on the host)."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


# ---- attention and decoder -----------------------------------------------------------------------
class Memory(typing.NamedTuple):
    """What every decoder step reads: encoder states (values), W_a s_j (keys), the padding mask."""
    values: object  # (B, S, H_enc)
    keys: object    # (B, S, H)
    mask: object    # (B, S) bool Tensor, True at real words

    def select(self, rows):
        """The memory of batch rows ``rows`` (beam search repeats and reorders sentences)."""
        return Memory(self.values[rows], self.keys[rows], self.mask[rows])


class LuongAttention(nn.Module):
    """Luong's "general" score h^T W_a s_j, softmax over the real words, weighted sum of states."""

    def __init__(self, query_size, key_size):
        super().__init__()
        self.score = nn.Linear(key_size, query_size, bias=False)   # W_a

    def keys(self, states):
        """W_a s_j for every encoder state, computed once per sentence: (B, S, H)."""
        return self.score(states)

    def forward(self, query, memory):
        """query h_t (B, H) -> context (B, H_enc) and weights (B, S)."""
        scores = (memory.keys @ query.unsqueeze(-1)).squeeze(-1)                       # (B, S)
        weights = F.where(memory.mask, scores, -math.inf).softmax(dim=-1)              # padding gets 0
        context = (weights.unsqueeze(1) @ memory.values).squeeze(1)                     # (B, H_enc)
        return context, weights


class Decoder(nn.Module):
    def __init__(self, vocabulary_size, embedding_dim, hidden, encoder_size):
        super().__init__()
        # No padding_idx: <pad> is read only after <eos>, where nothing is scored.
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)
        self.cell = nn.LSTMCell(embedding_dim + hidden, hidden)              # input [y_{t-1}; h~_{t-1}]
        self.attention = LuongAttention(hidden, encoder_size)
        self.combine = nn.Linear(encoder_size + hidden, hidden, bias=False)  # W_c
        self.output = nn.Linear(hidden, vocabulary_size)                     # W_o, b_o

    def step(self, tokens, state, memory):
        """One output position: previous tokens (B,) and state (h, c, h~) -> new state and the
        attention weights (B, S). The logits are ``output(h~)``, left to the caller (training
        projects every step's h~ at once)."""
        h, c, attentional = state
        h, c = self.cell(cat([self.embedding(tokens), attentional], dim=-1), (h, c))
        context, weights = self.attention(h, memory)
        attentional = self.combine(cat([context, h], dim=-1)).tanh()                    # h~_t (B, H)
        return (h, c, attentional), weights

    def log_probabilities(self, attentional):
        """log p(y_t | y_<t, x) (B, V) as a float64 host array, for decoding."""
        return to_numpy(self.output(attentional).log_softmax(dim=-1).data).astype(np.float64)


class Seq2Seq(nn.Module):
    def __init__(self, config, source_vocabulary_size, target_vocabulary_size):
        super().__init__()
        self.encoder = Encoder(source_vocabulary_size, config.embedding_dim, config.hidden)
        self.decoder = Decoder(target_vocabulary_size, config.embedding_dim, config.hidden, config.hidden)

    def encode(self, source):
        """source (B, S) -> the decoder's memory and initial state: h = the encoder's final
        states, c = 0, h~ = 0."""
        states, final, mask = self.encoder(source)
        memory = Memory(states, self.decoder.attention.keys(states), mask)
        empty = zeros(*final.shape, dtype=final.dtype, device=final.device)
        return memory, (final, empty, empty)

    def forward(self, source, decoder_input, teacher_forcing=1.0):
        """Logits (B, T, V) of every next token. ``decoder_input`` (B, T) is <bos> and the gold
        target; after the first step each row reads its gold token with probability
        ``teacher_forcing`` (a number, or a 0-d tensor that training writes before each step) and the
        previous step's greedy choice otherwise."""
        memory, state = self.encode(source)
        tokens, attentional = decoder_input[:, 0], []
        for position in range(decoder_input.shape[1]):
            if position:
                tokens = self.mix_inputs(decoder_input[:, position], state[2], teacher_forcing)
            state, _ = self.decoder.step(tokens, state, memory)
            attentional.append(state[2])
        return self.decoder.output(stack(attentional, dim=1))                           # (B, T, V)

    def mix_inputs(self, gold, attentional, teacher_forcing):
        """Next decoder inputs: each row's gold token with probability ``teacher_forcing``, its
        greedy choice from h~ otherwise (a choice: no gradient flows through it). A draw, an argmax
        and a ``where``: ops, so a compiled step mixes afresh on every replay."""
        if not isinstance(teacher_forcing, Tensor) and teacher_forcing >= 1.0:
            return gold   # a Python ratio of 1 (evaluation): nothing to draw
        with no_grad():
            predicted = self.decoder.output(attentional).argmax(dim=-1)
        use_gold = rand(gold.shape[0], device=gold.device) < teacher_forcing
        return F.where(use_gold, gold, predicted)

    def greedy_decode(self, source, max_length=MAX_DIGITS + 1):
        """The most likely next token at every step until every row has written <eos>:
        tokens (B, T) (<pad> after <eos>), attention weights (B, T, S), log-probabilities (B,)."""
        memory, state = self.encode(source)
        batch = source.shape[0]
        tokens = np.full(batch, BOS_INDEX)
        finished, total = np.zeros(batch, dtype=bool), np.zeros(batch)
        outputs, weights = [], []
        for _ in range(max_length):
            state, step_weights = self.decoder.step(tensor(tokens, device=source.device), state, memory)
            log_probs = self.decoder.log_probabilities(state[2])
            tokens = np.where(finished, PAD_INDEX, log_probs.argmax(axis=-1))
            total += np.where(finished, 0.0, log_probs[np.arange(batch), tokens])
            finished |= tokens == EOS_INDEX
            outputs.append(tokens)
            weights.append(to_numpy(step_weights.data))
            if finished.all():
                break
        return np.stack(outputs, axis=1), np.stack(weights, axis=1), total

    def beam_search(self, source, beam_width, max_length=MAX_DIGITS + 1):
        """The ``beam_width`` most likely prefixes kept at every step; returns the best sequence
        per row as ``greedy_decode`` does (beam width 1 is greedy decoding).

        Row b k + j holds beam j of sentence b. A finished beam extends only by <pad>, at no
        cost, so it keeps its score while the others grow.
        """
        check_beam_width(beam_width)
        batch, width = source.shape[0], beam_width
        memory, state = self.encode(source)
        rows = np.repeat(np.arange(batch), width)
        memory, state = memory.select(rows), tuple(part[rows] for part in state)
        scores = np.full((batch, width), -np.inf)
        scores[:, 0] = 0.0                 # the beams start identical: only one is live at first
        tokens = np.full(batch * width, BOS_INDEX)
        finished = np.zeros(batch * width, dtype=bool)
        history = np.zeros((batch * width, 0), dtype=np.int64)
        weights = np.zeros((batch * width, 0, source.shape[1]), dtype=np.float32)
        for _ in range(max_length):
            state, step_weights = self.decoder.step(tensor(tokens, device=source.device), state, memory)
            log_probs = self.decoder.log_probabilities(state[2])                        # (B k, V)
            log_probs[finished] = -np.inf
            log_probs[finished, PAD_INDEX] = 0.0
            vocabulary = log_probs.shape[1]
            candidates = (scores.reshape(-1, 1) + log_probs).reshape(batch, width * vocabulary)
            best = np.argsort(-candidates, axis=1, kind="stable")[:, :width]           # (B, k), best first
            scores = np.take_along_axis(candidates, best, axis=1)
            parents = (np.arange(batch)[:, None] * width + best // vocabulary).reshape(-1)
            tokens = (best % vocabulary).reshape(-1)
            state = tuple(part[parents] for part in state)
            history = np.concatenate([history[parents], tokens[:, None]], axis=1)
            step_weights = to_numpy(step_weights.data)[parents]
            weights = np.concatenate([weights[parents], step_weights[:, None]], axis=1)
            finished = finished[parents] | (tokens == EOS_INDEX)
            if finished.all():
                break
        best_beams = np.arange(batch) * width
        return history[best_beams], weights[best_beams], scores[:, 0]


# ---- training, evaluation, translation -----------------------------------------------------------
class Translation(typing.NamedTuple):
    words: list        # the source words
    digits: str        # the model's output, up to <eos>
    tokens: list       # the output tokens, <eos> included
    attention: object  # (output tokens, words) float32: the attention weights of every output step


@register
class Seq2SeqRecipe(Recipe):
    name = "seq2seq"
    Config = Seq2SeqConfig
    generative = False
    plot_keys = ("loss", "valid_loss")
    unused_options = ("image_size", "data")   # its data are generated number words
    evaluation_batch = 500

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.model = Seq2Seq(config, len(data.source_vocabulary), len(data.target_vocabulary)).to(self.device)
        self.optimizers = {"model": optim.Adam(self.model.parameters(), lr=config.lr, fused=True)}
        # the ratio as a 0-d tensor that before_step writes in place: a compiled step reads it on
        # every replay (a Python float would stay at its value when the step was captured)
        self.teacher_forcing_ratio = tensor(np.float32(config.teacher_forcing_start), device=self.device)

    @classmethod
    def load_data(cls, config):
        return load_number_words(train=config.train_size, seed=config.data_seed)

    def teacher_forcing(self, clock):
        """The ratio at this step: linear from start to end over the epochs."""
        start, end = self.config.teacher_forcing_start, self.config.teacher_forcing_end
        return start + (end - start) * min(1.0, clock.epochs_done / max(self.config.epochs - 1, 1))

    def before_step(self, clock):
        self.teacher_forcing_ratio.data[...] = self.teacher_forcing(clock)

    def to_tensors(self, arrays):
        """A batch as Tensors, its targets trimmed to the longest (``trim_padding``): the decoder
        takes no step past it, and a compiled step finds the width in the batch's shape."""
        source, target = arrays
        return super().to_tensors((source, trim_padding(target)))

    def loss(self, source, target, teacher_forcing=1.0):
        """Mean cross-entropy per target token (nats), padding ignored; target (B, W) is <bos> y
        <eos> <pad>..., one decoder step per column but the last (trimmed: ``trim_padding``)."""
        logits = self.model(source, target[:, :-1], teacher_forcing)                     # (B, W-1, V)
        gold = target[:, 1:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=PAD_INDEX)

    def train_step(self, batch, clock):
        source, target = batch
        loss = self.loss(source, target, self.teacher_forcing_ratio)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        if self.config.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        optimizer.step()
        return {"loss": loss.item(), "teacher_forcing": self.teacher_forcing_ratio.item()}

    # ---- evaluation -----------------------------------------------------------------------------
    def decode(self, source, beam_width=1):
        """Output tokens and attention weights of a (N, S) source array, ``evaluation_batch`` at a time."""
        tokens, weights = [], []
        with no_grad():
            for start in range(0, len(source), self.evaluation_batch):
                batch = tensor(source[start:start + self.evaluation_batch], device=self.device)
                decoded = (self.model.greedy_decode(batch) if beam_width == 1
                           else self.model.beam_search(batch, beam_width))
                tokens.extend(decoded[0])
                weights.extend(decoded[1])
        return tokens, weights

    def exact_matches(self, split, data, beam_width=1):
        """(N,) bool: the decoded digits equal the number, for every pair of a split."""
        source, _, numbers = data.split(split)
        tokens, _ = self.decode(source, beam_width)
        return np.array([decode_digits(row) == str(number) for row, number in zip(tokens, numbers)])

    def validate(self, data):
        """Validation loss (teacher forced, nats per token) and greedy exact match."""
        source, target, _ = data.split("valid")
        with no_grad():
            loss = self.loss(*self.to_tensors((source, target))).item()
        return {"valid_loss": loss, "valid_exact_match": float(self.exact_matches("valid", data).mean())}

    def evaluate(self, data):
        """Test exact match, greedy and with beam search, and greedy by the number's digit count."""
        greedy = self.exact_matches("test", data)
        report = {"test_exact_match": float(greedy.mean()),
                  f"test_exact_match_beam{self.config.beam_width}":
                      float(self.exact_matches("test", data, self.config.beam_width).mean())}
        digit_counts = np.array([len(str(number)) for number in data.test_numbers])
        for count in range(1, MAX_DIGITS + 1):
            chosen = digit_counts == count
            if chosen.any():
                report[f"test_exact_match_{count}_digits"] = float(greedy[chosen].mean())
                report[f"test_count_{count}_digits"] = int(chosen.sum())
        return report

    # ---- translation ----------------------------------------------------------------------------
    def translate(self, sentences, beam_width=None):
        """A ``Translation`` of each sentence (a string of number words; an empty one gives "")."""
        beam_width = beam_width or self.config.beam_width
        check_beam_width(beam_width)
        words = [tokenize(sentence) for sentence in sentences]
        known = set(SOURCE_VOCABULARY.tokens[1:])
        unknown = sorted({word for sentence in words for word in sentence} - known)
        if unknown:
            raise ValueError(f"expected English number words ({', '.join(SOURCE_VOCABULARY.tokens[1:])}), "
                             f"got unknown words {unknown}")
        given = [index for index, sentence in enumerate(words) if sentence]
        tokens, weights = self.decode(SOURCE_VOCABULARY.encode([words[index] for index in given]), beam_width)
        translations = [Translation(sentence, "", [], np.zeros((0, 0), np.float32)) for sentence in words]
        for index, row, attention in zip(given, tokens, weights):
            output = TARGET_VOCABULARY.decode(row)
            steps = output.index(EOS) + 1 if EOS in output else len(output)
            attention = np.asarray(attention[:steps, :len(words[index])], dtype=np.float32)
            translations[index] = Translation(words[index], decode_digits(row), output[:steps], attention)
        return translations
