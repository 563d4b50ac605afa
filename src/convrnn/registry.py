"""timm-style registries for cells, models and model architectures: plain tables, the bottom of the
package (nothing here imports a cell, a model or the checkpoint code).

>>> import convrnn
>>> convrnn.list_cells()                      # ['convgru', 'convlstm', ...]
>>> cell = convrnn.create_cell("convgru", 16, 32)
>>> model = convrnn.create_model("dtnet_recall_mazes", width=32)

New entries are added with ``@register_cell("name")`` on an ``nn.Module`` subclass whose constructor
takes ``(in_channels, hidden_channels, **kw)`` and ``@register_model("name")`` on a function that
returns an ``nn.Module`` and accepts keyword overrides. A model class that checkpoints can rebuild
(:func:`convrnn.checkpoint.load_model`) is registered with its config class by
:func:`register_architecture`. Bundled weights (``create_model(name, pretrained=True)``) are the
business of :mod:`convrnn.models.api`, above the checkpoint code.

The package root names, with :func:`set_builtins_loader`, the function that imports the built-in
cells and models; a lookup of an unknown architecture calls it once, so a checkpoint loads in a
process that has not imported :mod:`convrnn.models` yet. This module imports no torch (``import
convrnn`` stays torch-free).
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Callable

_CELLS: dict[str, type] = {}
_MODELS: dict[str, Callable] = {}
_ARCHITECTURES: dict[str, tuple[type, Callable]] = {}   # model class name -> (config class, build(config))
_builtins_loader: list[Callable[[], object]] = []       # set once by the package root


def _register(table: dict, kind: str, name: str | None):
    def deco(obj):
        key = name or obj.__name__.lower()
        if key in table and table[key] is not obj:
            raise ValueError(f"{kind} {key!r} is already registered")
        table[key] = obj
        return obj
    return deco


def register_cell(name: str | None = None):
    """Class decorator: make a cell available to :func:`create_cell` under ``name``."""
    return _register(_CELLS, "cell", name)


def register_model(name: str | None = None):
    """Function decorator: make a model factory available to :func:`create_model` under ``name``."""
    return _register(_MODELS, "model", name)


def register_architecture(model_cls: type, config_cls: type, build: Callable | None = None) -> type:
    """Let checkpoints rebuild ``model_cls``: a checkpoint names the class (``type(model).__name__``) and
    stores ``model.config.to_dict()``; loading calls ``build(config_cls.from_dict(...))`` (``build``
    defaults to the class itself). Returns ``model_cls``, so it also works after a class statement."""
    entry = (config_cls, build or model_cls)
    key = model_cls.__name__
    if key in _ARCHITECTURES and _ARCHITECTURES[key] != entry:
        raise ValueError(f"architecture {key!r} is already registered")
    _ARCHITECTURES[key] = entry
    return model_cls


def set_builtins_loader(load: Callable[[], object]) -> None:
    """``load()`` registers the built-in cells and models (the package root passes one that imports
    :mod:`convrnn.models`); :func:`get_architecture` calls it once, on the first unknown name."""
    _builtins_loader[:] = [load]


def get_architecture(name: str) -> tuple[type, Callable]:
    """``(config class, build)`` of the registered model class ``name``; a ``KeyError`` names the known ones."""
    if name not in _ARCHITECTURES and _builtins_loader:
        _builtins_loader.pop()()
    if name not in _ARCHITECTURES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(sorted(_ARCHITECTURES)) or 'none'}")
    return _ARCHITECTURES[name]


def _list(table: dict, pattern: str) -> list[str]:
    return sorted(k for k in table if fnmatch.fnmatch(k, pattern))


def list_cells(pattern: str = "*") -> list[str]:
    return _list(_CELLS, pattern)


def list_models(pattern: str = "*") -> list[str]:
    return _list(_MODELS, pattern)


def get_cell_class(name: str) -> type:
    if name not in _CELLS:
        from .errors import unknown_name     # (errors imports torch; this module must not)
        raise unknown_name("cell", name, _CELLS)
    return _CELLS[name]


def create_cell(name: str, in_channels: int, hidden_channels: int, **kw):
    """Build the registered cell ``name``; unknown keyword arguments raise a ValueError listing valid ones."""
    cls = get_cell_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        from .errors import check_keys
        valid = [k for k in params if k not in ("self", "in_channels", "hidden_channels")]
        check_keys(f"cell {name!r}", kw, valid)
    return cls(in_channels, hidden_channels, **kw)


def create_model(name: str, **overrides):
    """Build the registered model ``name`` with random weights (``convrnn.create_model``, from
    :mod:`convrnn.models.api`, adds ``pretrained=True``)."""
    if name not in _MODELS:
        from .errors import unknown_name
        raise unknown_name("model", name, _MODELS)
    return _MODELS[name](**overrides)
