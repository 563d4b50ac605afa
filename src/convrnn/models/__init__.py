"""Models: the weight-tied recurrent model and its named recipes."""
from . import zoo  # noqa: F401  (registers the recipes)
from .recurrent import RecurrentConfig, RecurrentModel

__all__ = ["RecurrentConfig", "RecurrentModel"]
