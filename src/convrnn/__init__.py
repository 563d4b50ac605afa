"""convrnn — convolutional recurrent neural networks for vision.

Cells (:mod:`convrnn.cells`), the weight-tied recurrent model (:mod:`convrnn.models`), halting
policies (:mod:`convrnn.halting`), losses (:mod:`convrnn.losses`) and tasks (:mod:`convrnn.tasks`).
"""
from . import cells, models  # noqa: F401  (register cells and models)
from .halting import ACT, Confidence, Convergence, Fixed, PonderNet, RecurrentOutput, StableOutput
from .models import RecurrentConfig, RecurrentModel
from .registry import create_cell, create_model, list_cells, list_models, register_cell, register_model

__version__ = "0.1.0"
__all__ = ["create_cell", "create_model", "list_cells", "list_models", "register_cell", "register_model",
           "RecurrentConfig", "RecurrentModel", "RecurrentOutput", "Fixed", "ACT", "PonderNet", "Confidence",
           "Convergence", "StableOutput"]
