"""Input validation shared by cells, models and the CLI.

Every check raises a ``ValueError``/``TypeError`` whose message names what was expected, so bad
input never fails deep inside torch with an unrelated message. The vocabulary, each reading
"<what> must be ..., got <value>": :func:`check_int` (``check_positive_int``), :func:`check_number`
(a real number in a range), :func:`check_choice` (one of a few fixed options), :func:`check_bool`;
:func:`unknown_name` and :func:`check_keys` for registry names and mapping keys (with a "did you
mean"); :func:`check_image` and :func:`check_steps` for what models are called with. Checks sit at
the public boundary (a config's ``__post_init__``, a constructor, a public function); inner
functions trust what the boundary checked.
"""
from __future__ import annotations

import contextlib
import difflib
import math
import numbers
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["require", "check_int", "check_positive_int", "check_number", "check_choice", "check_bool", "DictConfig",
           "check_image", "check_steps", "unknown_name", "check_keys", "set_finite_checks"]

_CHECK_FINITE = True


def require(module: str, extra: str):
    """Import an optional dependency, or fail with the pip command that installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"this needs the optional package {module!r}: pip install 'convrnn[{extra}]'") from None


def set_finite_checks(enabled: bool) -> None:
    """Turn the NaN/inf scan of model inputs on or off (it costs one device sync per call)."""
    global _CHECK_FINITE
    _CHECK_FINITE = bool(enabled)


def check_image(x: torch.Tensor, channels: int | None, what: str = "input", finite: bool = True) -> None:
    """Require a floating (B, C, H, W) tensor with ``channels`` channels and finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what}: expected 4 dims (B, C, H, W), got {x.dim()} dims with shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{what}: expected {channels} channels (dim 1), got {x.shape[1]} (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected a floating-point tensor (float32/bfloat16/float16), got {x.dtype}; "
                        "convert with x.float()")
    if finite:
        check_finite_state(x, what)


def check_finite_state(state, what: str) -> None:
    """Require every floating tensor of ``state`` (a tensor or a tuple/list/dict of them) to be finite."""
    if not _CHECK_FINITE or state is None or torch.compiler.is_compiling():
        return
    parts = state.values() if isinstance(state, dict) else (state,) if isinstance(state, torch.Tensor) else state
    for s in parts:
        if isinstance(s, torch.Tensor):
            if s.is_floating_point() and not bool(torch.isfinite(s).all()):
                raise ValueError(f"{what}: contains NaN or inf values")
        elif isinstance(s, (tuple, list, dict)):
            check_finite_state(s, what)


@contextlib.contextmanager
def finite_checks_off():
    """Skip the NaN/inf scans inside a model's own recurrence: the model checked its input and state once
    per forward, so the cells need not scan them again at every step (one device sync each)."""
    global _CHECK_FINITE
    old, _CHECK_FINITE = _CHECK_FINITE, False
    try:
        yield
    finally:
        _CHECK_FINITE = old


def short_repr(v) -> str:
    """``repr(v)`` cut to a few items and levels (a huge or aliased structure never expands in a message)."""
    import reprlib
    return reprlib.repr(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def check_int(what: str, v, min: int | None = None, max: int | None = None, *, odd: bool = False) -> int:
    """Require an int (not a bool) in ``min..max`` (either bound optional), odd with ``odd``. The error
    reads "<what> must be a positive int, got <v>" (``min=1``), "... an int >= 0", "... an int in 2..9",
    "... a positive odd int"."""
    if not _is_int(v) or (min is not None and v < min) or (max is not None and v > max) or (odd and v % 2 == 0):
        kind = "odd int" if odd else "int"
        if min == 1 and max is None:
            want = f"a positive {kind}"
        elif min is not None and max is not None:
            want = f"an {kind} in {min}..{max}"
        else:
            want = f"an {kind}" + (f" >= {min}" if min is not None else f" <= {max}" if max is not None else "")
        raise ValueError(f"{what} must be {want}, got {short_repr(v)}")
    return v


def check_positive_int(what: str, v) -> int:
    """Require a positive int (not a bool); the error reads "<what> must be a positive int, got <v>"."""
    return check_int(what, v, 1)


def check_number(what: str, v, min: float | None = None, max: float | None = None, *,
                 min_open: bool = False, max_open: bool = False, finite: bool = True) -> float:
    """Require a real number (int, float or a numpy scalar, not a bool; finite unless ``finite=False``) within the
    bounds, each closed unless ``min_open``/``max_open``. The error reads "<what> must be a number in
    [0, 1), got <v>", "... a number > 0", "... a number >= 1". Returns ``v`` as given."""
    ok = _is_number(v) and (not finite or math.isfinite(v))
    if ok and min is not None:
        ok = v > min if min_open else v >= min
    if ok and max is not None:
        ok = v < max if max_open else v <= max
    if not ok:
        if min is not None and max is not None:
            want = f"a number in {'(' if min_open else '['}{min}, {max}{')' if max_open else ']'}"
        elif min is not None:
            want = f"a number {'>' if min_open else '>='} {min}"
        elif max is not None:
            want = f"a number {'<' if max_open else '<='} {max}"
        else:
            want = "a finite number" if finite else "a number"
        raise ValueError(f"{what} must be {want}, got {short_repr(v)}")
    return v


def check_choice(what: str, v, choices: Iterable):
    """Require one of a few fixed options (for registry names use :func:`unknown_name`, which suggests
    the closest); the error reads "<what> must be one of a, b, c, got <v>"."""
    choices = list(choices)
    if not any(v is c or (type(v) is type(c) and v == c) for c in choices):
        raise ValueError(f"{what} must be one of {', '.join(str(c) for c in choices)}, got {short_repr(v)}")
    return v


def check_bool(what: str, v) -> bool:
    """Require ``True`` or ``False`` (not 0/1 or a string); the error reads "<what> must be true or false, got <v>"."""
    if not isinstance(v, bool):
        raise ValueError(f"{what} must be true or false, got {short_repr(v)}")
    return v


def check_steps(steps, what: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"{what}: expected a positive int, got {steps!r}")
    if steps < 1:
        raise ValueError(f"{what}: expected >= 1, got {steps}")
    return steps


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> ValueError:
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    plural = kind[:-1] + "ies" if kind.endswith("y") else kind + "s"
    return ValueError(f"unknown {kind} {name!r}.{hint} Valid {plural}: {', '.join(valid)}")


def check_keys(what: str, given: Iterable[str], valid: Iterable[str]) -> None:
    valid = sorted(valid)
    bad = sorted(set(given) - set(valid))
    if bad:
        hints = []
        for b in bad:
            close = difflib.get_close_matches(b, valid, n=1)
            hints.append(f"{b!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown {what} key(s): {', '.join(hints)}. Valid keys: {', '.join(valid)}")


class DictConfig:
    """Mixin for config dataclasses: ``from_dict`` refuses unknown keys (naming the valid ones) and
    ``to_dict`` gives plain JSON-able data. ``_what`` names the config in error messages."""

    _what = "config"

    @classmethod
    def from_dict(cls, d: dict):
        import dataclasses
        check_keys(cls._what, d, [f.name for f in dataclasses.fields(cls)])
        return cls(**d)

    def to_dict(self) -> dict:
        import dataclasses
        return dataclasses.asdict(self)
