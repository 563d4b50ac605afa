"""convrnn — convolutional recurrent neural networks for vision.

Cells (:mod:`convrnn.cells`), the weight-tied recurrent model and the sequence wrapper
(:mod:`convrnn.models`), halting policies (:mod:`convrnn.halting`), losses (:mod:`convrnn.losses`)
and tasks (:mod:`convrnn.tasks`).

The names below load on first use (PEP 562), so ``import convrnn`` and the torch-free data
generators (``convrnn data mazes``) start without importing torch; using any of them imports the
cells and models, which registers every built-in cell and model. The registry (torch-free) is told
here how to register them, so ``convrnn.checkpoint.load_model`` finds the built-in architectures in
a process that has not imported :mod:`convrnn.models` yet.
"""
import importlib

from . import registry as _registry

__version__ = "0.1.0"

_EXPORTS = {
    "create_cell": "registry", "create_model": "models.api", "load_model": "models.api", "list_cells": "registry",
    "list_models": "registry", "register_cell": "registry", "register_model": "registry",
    "register_architecture": "registry",
    "ConvRNN": "models", "RecurrentConfig": "models", "RecurrentModel": "models",
    "RecurrentOutput": "halting", "Fixed": "halting", "ACT": "halting", "PonderNet": "halting",
    "Confidence": "halting", "Convergence": "halting", "StableOutput": "halting",
}
__all__ = sorted(_EXPORTS)


def _register_builtins():
    importlib.import_module(".models", __name__)      # registers the built-in cells and models


_registry.set_builtins_loader(_register_builtins)


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(f"module 'convrnn' has no attribute {name!r}")
    if name in _EXPORTS:
        _register_builtins()
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)     # a submodule: convrnn.cells, ...
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'convrnn' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
