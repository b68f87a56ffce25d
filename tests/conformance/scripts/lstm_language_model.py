"""A word_language_model-style training step (PyTorch code): embedding -> 2-layer LSTM -> linear over
the vocabulary, cross-entropy on the next token, backward, gradient clipping and one SGD step; then a
second window from the carried (detached) state, as truncated backpropagation through time does it."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import numpy as np

VOCABULARY, EMBEDDING, HIDDEN, STEPS, BATCH = 11, 6, 8, 7, 3


class LanguageModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(VOCABULARY, EMBEDDING)
        self.rnn = nn.LSTM(EMBEDDING, HIDDEN, num_layers=2)
        self.decoder = nn.Linear(HIDDEN, VOCABULARY)

    def forward(self, tokens, hidden=None):
        output, hidden = self.rnn(self.encoder(tokens), hidden)   # (T, B, H)
        return self.decoder(output), hidden                       # (T, B, V)


def build():
    return LanguageModel()


def run(model):
    rng = np.random.default_rng(3)
    stream = torch.tensor(rng.integers(0, VOCABULARY, size=(2 * STEPS + 1, BATCH)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    hidden, losses, norms = None, [], []
    for start in (0, STEPS):
        inputs, targets = stream[start:start + STEPS], stream[start + 1:start + 1 + STEPS]
        optimizer.zero_grad()
        logits, hidden = model(inputs, hidden)
        loss = F.cross_entropy(logits.reshape(-1, VOCABULARY), targets.reshape(-1))
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), 0.25).item())
        optimizer.step()
        hidden = tuple(state.detach() for state in hidden)
        losses.append(loss.item())
    outputs = {"losses": np.array(losses), "grad_norms": np.array(norms),
               "h_n": hidden[0].numpy(), "c_n": hidden[1].numpy()}
    for name, parameter in model.named_parameters():
        outputs[name + ".grad"] = parameter.grad.numpy()
        outputs[name] = parameter.detach().numpy()
    return outputs
