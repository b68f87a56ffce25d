"""What every model of the 17-level digits scored in bits per pixel shares (``pixelcnn``,
``pixelrnn``, ``realnvp``): a recipe that refuses other data with the reason, builds its model
and Adam, and reads a batch's grey levels."""
from .. import optim
from ..eval.likelihood import LEVELS, to_levels
from .base import Recipe


class LevelsRecipe(Recipe):
    """A subclass sets ``name``, ``Config`` and ``build_model(config, image_shape)``."""
    plot_keys = ("bits_per_dim", "test_bits_per_dim")

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        for images in (data.train_images, data.test_images):
            to_levels(images, op=self.name)  # refuse data that is not 17 grey levels, with the reason
        self.model = self.build_model(config, data.image_shape).to(self.device)
        self.optimizers = {"model": optim.Adam(self.model.parameters(), lr=config.lr, fused=True)}

    def build_model(self, config, image_shape):
        raise NotImplementedError(f"{type(self).__name__} must implement build_model")

    @staticmethod
    def batch_levels(images):
        """(N, H, W) int64 levels of a training batch's images (a Tensor holding level / 16), as
        engine ops so that a compiled step quantises every batch: floor(16 x + 1/2), which is
        round(16 x) for the images ``to_levels`` accepted (each within 1e-4 of a level)."""
        return (images * (LEVELS - 1) + 0.5).long()
