"""Named model recipes. Each is a plain function returning a :class:`RecurrentModel`; keyword
arguments override any field of :class:`RecurrentConfig` (unknown keys raise a ValueError)."""
from __future__ import annotations

from ..registry import register_model
from .recurrent import RecurrentConfig, RecurrentModel


def _build(defaults: dict, overrides: dict) -> RecurrentModel:
    return RecurrentModel(RecurrentConfig.from_dict({**defaults, **overrides}))


@register_model("convrnn_dense")
def convrnn_dense(**kw):
    """Generic per-pixel model (any cell via ``cell=``)."""
    return _build(dict(cell="convgru", head="dense"), kw)


@register_model("convrnn_classifier")
def convrnn_classifier(**kw):
    """Generic image classifier: encoder, iterated cell, average-pool + linear readout."""
    return _build(dict(cell="convgru", head="avgpool", out_channels=10), kw)


@register_model("dtnet_recall_mazes")
def dtnet_recall_mazes(**kw):
    """DeepThinking DT-net with recall (Bansal et al. 2022): width 128, 30 training iterations."""
    return _build(dict(cell="residual", width=128, head="dense", recall=True, steps=30), kw)


@register_model("act_mazes")
def act_mazes(**kw):
    """DT-net-style residual ConvRNN with a state-reading halting unit, for end-to-end ACT training (AdRNN,
    Veerabadran et al. 2023; config ``mazes_act``). Trained from scratch here it collapsed to 2 steps;
    see ``adrnn_mazes`` for learned halting that works."""
    return _build(dict(cell="residual", width=64, head="dense", recall=True, steps=30, halt_bias=-3.0), kw)


@register_model("adrnn_mazes")
def adrnn_mazes(**kw):
    """The bundled maze solver with learned halting (``pretrained=True``): the ``dtnet_mazes_w64`` backbone (DT-net
    with recall, width 64, trained on 9x9 easy-to-hard mazes) with a halting head on answer dynamics fitted as a
    second stage (``convrnn fit-halting --objective error --lambda-p 0.2``), its default policy ("learned").
    Provenance: ``pretrained/adrnn_mazes.train.json``. Fine-tuning the backbone on a mixture of maze families
    (config ``mazes_mix_cpu``) fixed small mazes of every family but lost the extrapolation to large ones, so it
    is not the bundled backbone (RESULTS)."""
    return _build(dict(cell="residual", width=64, head="dense", recall=True, steps=30, dynamics_halting=True,
                       default_halting="learned"), kw)


@register_model("dtnet_mazes_w64")
def dtnet_mazes_w64(**kw):
    """DT-net with recall at width 64 (0.24M parameters), the bundled maze solver: trained with
    ``convrnn train`` on 9x9 mazes for 210 s on one H200 (``pretrained/dtnet_mazes_w64.train.json``);
    use ``pretrained=True`` and ``halting="stable"``."""
    return _build(dict(cell="residual", width=64, head="dense", recall=True, steps=30), kw)


# ---- PathFinder classifiers (Veerabadran et al. 2023): the authors' readout, ACT halting -----------

def _pathfinder(cell: str, width: int, cell_kwargs: dict, kw: dict) -> RecurrentModel:
    return _build(dict(in_channels=1, cell=cell, width=width, cell_kwargs=cell_kwargs, head="maxpool",
                       out_channels=2, recall=True, steps=12, halt_bias=-3.0), kw)


@register_model("adrnn_locrnn_pathfinder")
def adrnn_locrnn_pathfinder(**kw):
    """LocRNN (E/I, 7x7 excitatory and 5x5 inhibitory kernels) with 1x1-conv/max-pool/linear readout."""
    return _pathfinder("locrnn", 32, {}, kw)


@register_model("adrnn_convgru_pathfinder")
def adrnn_convgru_pathfinder(**kw):
    return _pathfinder("convgru", 32, {"kernel_size": 7}, kw)


@register_model("adrnn_hgru_pathfinder")
def adrnn_hgru_pathfinder(**kw):
    return _pathfinder("hgru", 24, {"kernel_size": 15, "timesteps": 12}, kw)


@register_model("dtnet_pathfinder")
def dtnet_pathfinder(**kw):
    """DT-net with recall for PathFinder's dense 3-class target (``PathfinderTask(target="dense")``):
    width 16 (21k parameters), per-pixel head with 3 outputs, 20 training steps, fully convolutional,
    so it runs on any canvas and for any number of steps."""
    return _build(dict(in_channels=1, cell="residual", width=16, head="dense", out_channels=3, recall=True,
                       steps=20), kw)


@register_model("adrnn_pathfinder")
def adrnn_pathfinder(**kw):
    """The bundled PathFinder model (``pretrained=True``): ``dtnet_pathfinder`` trained with
    ``convrnn train pathfinder_cpu`` (dense target, lra32, length 14) and a learned halting head
    fitted as a second stage (``convrnn fit-halting``), its default policy ("learned"). Decide an
    image with :func:`convrnn.tasks.pathfinder_task.decide`. Provenance:
    ``pretrained/adrnn_pathfinder.train.json``."""
    return _build(dict(in_channels=1, cell="residual", width=16, head="dense", out_channels=3, recall=True,
                       steps=20, dynamics_halting=True, default_halting="learned"), kw)


@register_model("adrnn_resnet_pathfinder")
def adrnn_resnet_pathfinder(**kw):
    """Recurrent ResNet: the weight-tied residual block iterated."""
    return _pathfinder("residual", 32, {}, kw)
