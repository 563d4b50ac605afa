"""timm-style registries for cells and models.

>>> import convrnn
>>> convrnn.list_cells()                      # ['convgru', 'convlstm', ...]
>>> cell = convrnn.create_cell("convgru", 16, 32)
>>> model = convrnn.create_model("dtnet_recall_mazes", width=32)

New entries are added with ``@register_cell("name")`` on an ``nn.Module`` subclass whose constructor
takes ``(in_channels, hidden_channels, **kw)`` and ``@register_model("name")`` on a function that
returns an ``nn.Module`` and accepts keyword overrides.
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Callable

from .errors import check_keys, unknown_name

_CELLS: dict[str, type] = {}
_MODELS: dict[str, Callable] = {}


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


def _list(table: dict, pattern: str) -> list[str]:
    return sorted(k for k in table if fnmatch.fnmatch(k, pattern))


def list_cells(pattern: str = "*") -> list[str]:
    return _list(_CELLS, pattern)


def list_models(pattern: str = "*") -> list[str]:
    return _list(_MODELS, pattern)


def get_cell_class(name: str) -> type:
    if name not in _CELLS:
        raise unknown_name("cell", name, _CELLS)
    return _CELLS[name]


def create_cell(name: str, in_channels: int, hidden_channels: int, **kw):
    """Build the registered cell ``name``; unknown keyword arguments raise a ValueError listing valid ones."""
    cls = get_cell_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [k for k in params if k not in ("self", "in_channels", "hidden_channels")]
        check_keys(f"cell {name!r}", kw, valid)
    return cls(in_channels, hidden_channels, **kw)


def create_model(name: str, pretrained: bool = False, **overrides):
    """Build the registered model ``name``; with ``pretrained=True`` load its bundled weights."""
    if name not in _MODELS:
        raise unknown_name("model", name, _MODELS)
    model = _MODELS[name](**overrides)
    if pretrained:
        from .checkpoint import load_pretrained
        load_pretrained(model, name)
    return model
