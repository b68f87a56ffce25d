"""The model families, each one readable file registered with the runner (see ``base``):

    mlp   an MLP digits classifier (the network behind the digits metrics)
    vae   a variational autoencoder, MLP or convolutional
    seq2seq  an LSTM encoder-decoder with attention: English number words -> digits
    gan   a DCGAN with non-saturating, hinge or WGAN-GP losses
    ae    an autoencoder anomaly detector (one digit held out of training)
    diffusion  a DDPM with a small attention U-Net, DDIM sampling and classifier-free guidance
    ngram  a Kneser-Ney character 5-gram: the baseline of the language models
    charlstm  a character-level LSTM language model (truncated BPTT, state carried)
    gpt   a tiny character-level GPT (pre-norm blocks, fused causal attention)
    pixelcnn  a PixelCNN: masked convolutions, scored in bits per pixel (``eval.likelihood``)
    pixelrnn  an LSTM over the pixels in raster order, in bits per pixel
    realnvp   a RealNVP normalizing flow (affine couplings), in bits per pixel
    rbm   a restricted Boltzmann machine (CD-k / PCD), Gibbs and MALA samples, AIS likelihood
    vaegan  a VAE whose decoder is a GAN's generator, reconstructing in the discriminator's features

``scratchgen train MODEL`` trains any of them; ``recipe_names()`` lists them.
"""
from .base import (Clock, Recipe, TrainConfig, config_fields, get_recipe, make_config,  # noqa: F401
                   recipe_names, register)
from .base import config_help, option  # noqa: F401
from . import autoencoder, charlstm, diffusion, gan, gpt, mlp, ngram, seq2seq, vae  # noqa: E402,F401  (importing a model registers it)
from . import pixelcnn  # noqa: E402,F401
from . import pixelrnn  # noqa: E402,F401
from . import realnvp  # noqa: E402,F401
from . import rbm, vaegan  # noqa: E402,F401
