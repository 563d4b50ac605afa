"""Models: the weight-tied recurrent model and its named recipes."""
from . import multiarea, pcrnn, unet, zoo  # noqa: F401  (registers the recipes, multi-area presets, "pcrnn", "unet_mri")
from .multiarea import MultiAreaConfig, MultiAreaNetwork
from .recurrent import RecurrentConfig, RecurrentModel

__all__ = ["RecurrentConfig", "RecurrentModel", "MultiAreaConfig", "MultiAreaNetwork"]
