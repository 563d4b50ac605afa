"""The user-facing ``create_model`` / ``load_model`` (``convrnn.create_model``, ``convrnn.load_model``):
the registry's builders plus checkpoint I/O, above both. Importing this module imports
:mod:`convrnn.models`, so every built-in model is registered."""
from __future__ import annotations

from .. import registry
from ..checkpoint import load_model, load_pretrained

__all__ = ["create_model", "load_model"]


def create_model(name: str, pretrained: bool = False, **overrides):
    """Build the registered model ``name``; with ``pretrained=True`` load its bundled weights."""
    model = registry.create_model(name, **overrides)
    if pretrained:
        load_pretrained(model, name)
    return model
