"""Models: the weight-tied recurrent model and its named recipes, multi-area networks, PC-RNN, the
sequence wrapper :class:`ConvRNN`."""
from . import multiarea, pcrnn, unet, zoo  # noqa: F401  (registers the recipes, multi-area presets, "pcrnn", "unet_mri")
from .multiarea import MultiAreaConfig, MultiAreaNetwork
from .recurrent import RecurrentConfig, RecurrentModel
from .sequence import ConvRNN
from ..registry import list_models   # noqa: F401  (with every built-in model registered)
from .api import create_model, load_model   # noqa: F401  (create_model(name, pretrained=True), checkpoints)

__all__ = ["ConvRNN", "RecurrentConfig", "RecurrentModel", "MultiAreaConfig", "MultiAreaNetwork", "create_model",
           "list_models", "load_model"]
