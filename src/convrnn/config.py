"""Training configuration as a plain dataclass, read from YAML with ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import DictConfig, check_choice, check_number, check_positive_int, short_repr

CONFIG_DIR = Path(__file__).parent / "configs"

#: the most values (counted with repeats, so a YAML alias bomb counts in full) a config may hold
MAX_CONFIG_ITEMS = 10_000


def check_size(what: str, data, limit: int = MAX_CONFIG_ITEMS) -> None:
    """Refuse nested lists/dicts holding more than ``limit`` values, counting a shared (aliased)
    object each time it appears; stops counting at the limit, so a billion-laughs alias bomb is
    refused at once instead of being expanded."""
    count, stack = 0, [data]
    while stack:
        v = stack.pop()
        count += 1
        if count > limit:
            raise ValueError(f"{what}: more than {limit} values (nested lists/maps, aliases counted in full); "
                             "expected a small config")
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)


@dataclass
class TrainConfig(DictConfig):
    _what = "training config"

    # what
    task: str = "mazes"
    model: str = "dtnet_recall_mazes"
    model_kwargs: dict = field(default_factory=dict)
    init: str | None = None        # start from these weights: a bundled model's name or a checkpoint (fine-tuning)
    # data
    train_size: int = 9            # maze size N (mazes) or contour length (pathfinder)
    n_train: int = 4000
    n_val: int = 500
    val_size: int | None = None    # difficulty for validation (default: train_size)
    data: str | None = None        # a data file/folder instead of generating
    data_kwargs: dict = field(default_factory=dict)   # task-specific generator options
    seed: int = 0
    # optimisation
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 2e-4
    warmup_epochs: float = 1.0
    schedule: str = "cosine"       # cosine | constant
    clip: float = 1.0
    recurrent_lr_scale: float = 1.0
    # recurrence and loss
    steps: int = 20
    loss: str = "progressive"      # final | all_steps | progressive | act | ponder
    alpha: float = 0.01            # progressive-loss weight
    tau: float = 1e-3              # ACT ponder-cost weight
    act_eps: float = 0.01
    lambda_p: float = 0.2          # PonderNet prior
    beta: float = 0.01             # PonderNet KL weight
    tbptt: int | None = None
    path_weight: float = 1.0       # mazes: extra weight of path pixels in the loss
    wall_weight: float = 0.1       # mazes: weight of wall pixels (small but > 0, so outputs there are confident)
    # runtime
    device: str = "auto"           # auto | cpu | cuda
    amp: str = "auto"              # auto (bf16 where native: AVX512-BF16/AMX CPUs, CUDA) | none | bf16
    channels_last: bool | str = "auto"   # true | false | auto (on the CPU: not for gated cells; see runtime)
    compile: bool = False
    num_threads: int | None = None
    out_dir: str = "runs/mazes"
    ckpt_every: int = 200          # optimizer steps
    log_every: int = 20
    eval_every: int = 1            # epochs
    tensorboard: bool = False
    time_limit: float | None = None       # seconds: end early and anneal the lr by wall time (not bit-reproducible)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if isinstance(d, dict) and "stop_after_steps" in d:    # a removed test hook; older config.json files hold null
            d = dict(d)
            if d.pop("stop_after_steps") is not None:
                raise ValueError("training config: stop_after_steps was a test hook and has been removed; to "
                                 "interrupt a run, stop the process and continue it with --resume")
        cfg = super().from_dict(d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", "float | None") and v is not None and not isinstance(v, bool):
                try:
                    setattr(self, f.name, float(v))
                except (TypeError, ValueError, OverflowError):
                    raise ValueError(f"training config: {f.name} must be a number, got {short_repr(v)}") from None
                if not math.isfinite(getattr(self, f.name)):
                    raise ValueError(f"training config: {f.name} must be a finite number, got {short_repr(v)}")
        for k in ("model_kwargs", "data_kwargs"):
            v = getattr(self, k)
            if not isinstance(v, dict):
                raise ValueError(f"training config: {k} must be a mapping, got {type(v).__name__}")
            check_size(f"training config: {k}", v)
        choices = {"loss": ("final", "all_steps", "progressive", "act", "ponder"), "amp": ("auto", "none", "bf16"),
                   "schedule": ("cosine", "constant"), "device": ("auto", "cpu", "cuda")}
        for k, allowed in choices.items():
            check_choice(f"training config: {k}", getattr(self, k), allowed)
        if self.channels_last not in (True, False, "auto"):
            raise ValueError("training config: channels_last must be true, false or auto, "
                             f"got {short_repr(self.channels_last)}")
        for k in ("epochs", "batch_size", "steps", "n_train", "n_val", "ckpt_every", "log_every", "eval_every"):
            check_positive_int(f"training config: {k}", getattr(self, k))
        for k in ("tbptt", "num_threads"):
            if getattr(self, k) is not None:
                check_positive_int(f"training config: {k} (or null)", getattr(self, k))
        if self.time_limit is not None and self.time_limit <= 0:
            raise ValueError(f"training config: time_limit must be > 0 seconds (or null), got {self.time_limit!r}")
        check_number("training config: warmup_epochs", self.warmup_epochs, 0)
        for k in ("val_size", "init", "data"):
            v = getattr(self, k)
            if v is not None and not isinstance(v, (int, str)) or isinstance(v, bool):
                raise ValueError(f"training config: {k} must be a scalar (or null), got {type(v).__name__}")


def _parse_value(text: str):
    return yaml.safe_load(text) if text != "" else ""


def set_dotted(data: dict, key: str, value, what: str = "override") -> None:
    """``data[a][b] = value`` for ``key="a.b"`` (intermediate dicts created)."""
    import copy
    target = data
    *parents, leaf = str(key).split(".")
    for part in parents:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ValueError(f"{what} {key!r}: {part!r} is not a mapping")
    target[leaf] = copy.deepcopy(value)


def load_yaml(path: str | None, overrides=(), what: str = "config") -> dict:
    """Read a YAML mapping (a path, or the name of a bundled config in ``convrnn/configs``) and apply
    ``key=value`` overrides; dotted keys reach into dicts (``model_kwargs.width=32``)."""
    data: dict = {}
    if path:
        p = Path(path)
        if not p.is_file() and (CONFIG_DIR / f"{path}.yaml").exists():     # a run folder may share the name
            p = CONFIG_DIR / f"{path}.yaml"
        if not p.is_file():
            bundled = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.yaml")))
            raise FileNotFoundError(f"{what} {str(path)!r} not found (a YAML path or a bundled config: {bundled})")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping of {what} keys, got {type(data).__name__}")
        check_size(str(p), data)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            parsed = _parse_value(value)
        except yaml.YAMLError as e:
            raise ValueError(f"override {item!r}: not a valid YAML value ({str(e).splitlines()[0]})") from None
        check_size(f"override {key!r}", parsed)
        set_dotted(data, key, parsed)
    return data


def load_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file or bundled config name plus ``key=value`` overrides."""
    return TrainConfig.from_dict(load_yaml(path, overrides))
