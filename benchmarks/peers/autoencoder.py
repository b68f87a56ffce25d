"""The PyTorch twin of ``scratchgen.models.autoencoder``: the same MLP autoencoder and loss, with
the same parameter names (``encoder.1.weight``, ``decoder.2.bias``, ...).

    twin, optimizer = build(config, side=8)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_ae.state_dict().items()})
    loss = training_step(twin, optimizer, images)        # = the scratchgen recipe's step
"""
import torch
from torch import nn
from torch.nn import functional as F


class TorchAutoencoder(nn.Module):
    def __init__(self, side=8, hidden=64, code_dim=8):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(side * side, hidden), nn.ReLU(),
                                     nn.Linear(hidden, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, side * side),
                                     nn.Unflatten(1, (side, side)))

    def forward(self, images):
        return self.decoder(self.encoder(images))


def training_loss(twin, images):
    """Binary cross-entropy of the reconstructions, summed over pixels, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(twin(images), images, reduction="sum") / images.shape[0]


def build(config, side):
    twin = TorchAutoencoder(side, config.hidden, config.code_dim)
    return twin, torch.optim.Adam(twin.parameters(), lr=config.lr)


def training_step(twin, optimizer, images):
    loss = training_loss(twin, images)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def twin_training_step(recipe, batch):
    """``step()``: what ``AutoencoderRecipe.train_step`` does, on ``batch`` ((N, S, S) images, labels)."""
    twin, optimizer = build(recipe.config, batch[0].shape[-1])
    twin.load_state_dict({name: torch.from_numpy(array) for name, array in recipe.model.state_dict().items()})
    images = torch.from_numpy(batch[0])
    return lambda: training_step(twin, optimizer, images)
