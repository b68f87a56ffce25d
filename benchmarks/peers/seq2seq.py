"""The PyTorch twin of ``scratchgen.models.seq2seq``: the same bidirectional LSTM encoder, Luong
attention decoder (``nn.LSTMCell``, input feeding) and loss, written as one would in PyTorch —
padding through ``pack_padded_sequence`` — with the same parameter names
(``encoder.lstm.weight_ih_l0_reverse``, ``decoder.cell.weight_hh``, ...).

    twin = TorchSeq2Seq.from_config(config, source_vocabulary_size=31, target_vocabulary_size=13)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_model.state_dict().items()})
    loss = training_loss(twin, source, target)      # = the scratchgen step's loss at ratio 1
    step = make_training_step(config, source, target)   # one Adam step, for the benchmark suite

Given a teacher-forcing ratio, the twin mixes gold and greedy tokens as the scratchgen step does (a
draw, an argmax, a ``where`` at every step after the first, even at ratio 1), so the benchmark times
the same work; without one it always reads the gold token.
"""
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD_INDEX = 0


class Encoder(nn.Module):
    def __init__(self, vocabulary_size, embedding_dim, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=PAD_INDEX)
        self.lstm = nn.LSTM(embedding_dim, hidden // 2, bidirectional=True, batch_first=True)

    def forward(self, source):
        """source (B, S) -> states (B, S, H) (zero at padding), final states (B, H), mask (B, S)."""
        mask = source != PAD_INDEX
        packed = pack_padded_sequence(self.embedding(source), mask.sum(dim=1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        states, (h_n, _) = self.lstm(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=source.shape[1])
        return states, torch.cat([h_n[0], h_n[1]], dim=-1), mask


class LuongAttention(nn.Module):
    def __init__(self, query_size, key_size):
        super().__init__()
        self.score = nn.Linear(key_size, query_size, bias=False)

    def forward(self, query, keys, values, mask):
        scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights


class Decoder(nn.Module):
    def __init__(self, vocabulary_size, embedding_dim, hidden, encoder_size):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)
        self.cell = nn.LSTMCell(embedding_dim + hidden, hidden)
        self.attention = LuongAttention(hidden, encoder_size)
        self.combine = nn.Linear(encoder_size + hidden, hidden, bias=False)
        self.output = nn.Linear(hidden, vocabulary_size)


class TorchSeq2Seq(nn.Module):
    def __init__(self, source_vocabulary_size, target_vocabulary_size, embedding_dim=64, hidden=128):
        super().__init__()
        self.encoder = Encoder(source_vocabulary_size, embedding_dim, hidden)
        self.decoder = Decoder(target_vocabulary_size, embedding_dim, hidden, hidden)

    @classmethod
    def from_config(cls, config, source_vocabulary_size, target_vocabulary_size):
        return cls(source_vocabulary_size, target_vocabulary_size, config.embedding_dim, config.hidden)

    def forward(self, source, decoder_input, teacher_forcing=None):
        """Logits (B, T, V) of every next token, reading the gold previous token, or with
        ``teacher_forcing`` given, each row's gold token with that probability and its greedy
        choice otherwise."""
        values, h, mask = self.encoder(source)
        keys = self.decoder.attention.score(values)
        c, attentional = torch.zeros_like(h), torch.zeros_like(h)
        outputs = []
        for position, gold in enumerate(decoder_input.unbind(dim=1)):
            mixing = position > 0 and teacher_forcing is not None
            tokens = self.mix_inputs(gold, attentional, teacher_forcing) if mixing else gold
            step_input = torch.cat([self.decoder.embedding(tokens), attentional], dim=-1)
            h, c = self.decoder.cell(step_input, (h, c))
            context, _ = self.decoder.attention(h, keys, values, mask)
            attentional = torch.tanh(self.decoder.combine(torch.cat([context, h], dim=-1)))
            outputs.append(attentional)
        return self.decoder.output(torch.stack(outputs, dim=1))

    def mix_inputs(self, gold, attentional, teacher_forcing):
        with torch.no_grad():
            predicted = self.decoder.output(attentional).argmax(dim=-1)
        use_gold = torch.rand(gold.shape[0]) < teacher_forcing
        return torch.where(use_gold, gold, predicted)


def training_loss(model, source, target, teacher_forcing=None):
    """Mean cross-entropy per target token; ``target`` is <bos> digits <eos> <pad>... (B, T + 1),
    trimmed to the longest target as the scratchgen step does."""
    width = int((target != PAD_INDEX).sum(dim=1).max())
    logits = model(source, target[:, :width - 1], teacher_forcing)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target[:, 1:width].reshape(-1),
                           ignore_index=PAD_INDEX)


def make_training_step(config, source, target, state_dict=None, source_vocabulary_size=31,
                       target_vocabulary_size=13, teacher_forcing=None):
    """A zero-argument callable: one training step of the twin on (source, target) int64 arrays
    (Adam at ``config.lr``, gradient norm clipped at ``config.clip_norm``, tokens mixed at the
    ``teacher_forcing`` ratio when one is given), returning the loss."""
    model = TorchSeq2Seq.from_config(config, source_vocabulary_size, target_vocabulary_size)
    if state_dict is not None:
        model.load_state_dict({name: torch.as_tensor(value) for name, value in state_dict.items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    source, target = torch.as_tensor(source), torch.as_tensor(target)

    def step():
        optimizer.zero_grad()
        loss = training_loss(model, source, target, teacher_forcing)
        loss.backward()
        if config.clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        return loss.item()

    return step


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): ``make_training_step`` with the
    recipe's config and weights on ``batch = (source, target)``, mixing at the recipe's current
    teacher-forcing ratio as its step does."""
    state = recipe.model.state_dict()
    return make_training_step(recipe.config, *batch, state_dict=state,
                              source_vocabulary_size=len(state["encoder.embedding.weight"]),
                              target_vocabulary_size=len(state["decoder.embedding.weight"]),
                              teacher_forcing=recipe.teacher_forcing_ratio.item())
