"""A transformer encoder block, forward and backward (PyTorch code): token embedding plus learned
positions, a 2-layer pre-norm nn.TransformerEncoder (GELU, batch_first) with a final LayerNorm under a
causal mask and a key padding mask, and a linear head; the loss on the real (unpadded) positions."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import numpy as np

VOCABULARY, D_MODEL, HEADS, LENGTH, BATCH = 13, 16, 4, 6, 3


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, D_MODEL)
        self.position = nn.Parameter(torch.zeros(LENGTH, D_MODEL))
        layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, dim_feedforward=32, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, norm=nn.LayerNorm(D_MODEL))
        self.head = nn.Linear(D_MODEL, VOCABULARY)

    def forward(self, tokens, mask, padding):
        x = self.embedding(tokens) + self.position                    # (B, T, E)
        return self.head(self.encoder(x, mask=mask, src_key_padding_mask=padding))


def build():
    model = Encoder()
    nn.init.normal_(model.position, std=0.1)
    return model


def run(model):
    rng = np.random.default_rng(5)
    tokens = torch.tensor(rng.integers(0, VOCABULARY, size=(BATCH, LENGTH)))
    targets = torch.tensor(rng.integers(0, VOCABULARY, size=(BATCH, LENGTH)))
    lengths = np.array([LENGTH, 4, 2])
    padding = torch.tensor(np.arange(LENGTH)[None, :] >= lengths[:, None])       # True: a padded key
    causal = torch.tensor(np.triu(np.full((LENGTH, LENGTH), -np.inf, dtype=np.float32), k=1))
    model.train()
    logits = model(tokens, causal, padding)
    real = torch.tensor((np.arange(LENGTH)[None, :] < lengths[:, None]).astype(np.float32))
    per_token = F.cross_entropy(logits.reshape(-1, VOCABULARY), targets.reshape(-1), reduction="none")
    loss = (per_token * real.reshape(-1)).sum() / real.sum()
    loss.backward()
    outputs = {"loss": np.array(loss.item()), "logits": logits.detach().numpy() * real.numpy()[:, :, None]}
    for name, parameter in model.named_parameters():
        outputs[name + ".grad"] = parameter.grad.numpy()
    return outputs
