"""Models: the weight-tied recurrent model and its named recipes."""
from . import pcrnn, unet, zoo  # noqa: F401  (registers the recipes, "pcrnn" and "unet_mri")
from .recurrent import RecurrentConfig, RecurrentModel

__all__ = ["RecurrentConfig", "RecurrentModel"]
