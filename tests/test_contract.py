"""The forward contract shared by the model families, pytree states and the validation vocabulary."""
import inspect

import pytest
import torch
from hypothesis import given, settings, strategies as st

import convrnn
from convrnn.cells.base import map_state, zip_state
from convrnn.errors import check_bool, check_choice, check_int, check_number, check_positive_int
from convrnn.halting import HaltingPolicy
from convrnn.models import ConvRNN, MultiAreaConfig, MultiAreaNetwork, RecurrentModel
from convrnn.models.pcrnn import PCRNN
from convrnn.models.unet import UNet


def _ids(params) -> list:
    return [id(p) for p in params]


# ---- recurrent_parameters -----------------------------------------------------------------------

@pytest.mark.parametrize("name", convrnn.list_models())
def test_every_registered_model_names_its_recurrent_parameters(name):
    model = convrnn.create_model(name)
    rec = _ids(model.recurrent_parameters())
    assert len(rec) == len(set(rec)) and set(rec) <= set(_ids(model.parameters()))
    if isinstance(model, RecurrentModel):
        expected = _ids(model.cell.parameters())
    elif isinstance(model, MultiAreaNetwork):
        expected = [i for a in model.areas.values() if a.cell is not None for i in _ids(a.cell.parameters())]
    elif isinstance(model, PCRNN):
        expected = [i for level in model.levels for i in _ids(level.cell.parameters())]
    else:
        assert isinstance(model, UNet)
        expected = []
    assert rec == expected
    assert bool(rec) == (not isinstance(model, UNet))
    assert list(model.recurrent_parameters()) == list(model.recurrent_parameters())   # a fresh iterator each call


def test_sequence_wrapper_recurrent_parameters_are_its_cells():
    seq = ConvRNN("convgru", 3, 4, num_layers=2)
    assert _ids(seq.recurrent_parameters()) == _ids(seq.parameters())


# ---- one forward signature ----------------------------------------------------------------------

SHARED = ("steps", "halting", "state", "return_steps", "shrink", "tbptt", "on_step")


def _params(fn) -> dict:
    return {k: (p.kind, p.default) for k, p in inspect.signature(fn).parameters.items()}


def test_recurrent_families_share_forward_keywords_and_defaults():
    a, b = _params(RecurrentModel.forward), _params(MultiAreaNetwork.forward)
    for k in SHARED:
        assert a[k] == b[k], k
    assert a["return_steps"][1] is False and a["steps"][1] is None and a["state"][1] is None
    assert list(a)[:4] == list(b)[:4] == ["self", "image", "steps", "halting"]
    assert _params(PCRNN.forward)["steps"] == (inspect.Parameter.POSITIONAL_OR_KEYWORD, None)


def test_multiarea_default_is_no_step_outputs_like_the_weight_tied_model():
    m = convrnn.create_model("greco_fb", width=0.125).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        plain, steps = m(x, steps=4), m(x, steps=4, return_steps=True)
    assert plain.step_outputs is None and steps.step_outputs.shape == (4, 2, 10)
    torch.testing.assert_close(plain.output, steps.output)


def test_pcrnn_takes_steps_and_iterations_as_a_deprecated_alias():
    model = convrnn.create_model("pcrnn", width=4, final_width=4, iterations=(1, 1, 1)).eval()
    k, mask = torch.randn(1, 2, 16, 16), torch.ones(16)
    with torch.no_grad():
        new = model(k, mask, steps=(1, 2, 1), return_intermediates=True)
        with pytest.warns(DeprecationWarning, match="steps="):
            old = model(k, mask, iterations=(1, 2, 1), return_intermediates=True)
        positional = model(k, mask, (1, 2, 1))
    torch.testing.assert_close(new.image, old.image)
    torch.testing.assert_close(new.image, positional.image)
    assert [len(x) for x in new.intermediates] == [1, 2, 1]
    with pytest.raises(ValueError, match="not both"):
        model(k, mask, steps=1, iterations=1)
    with pytest.raises(ValueError, match="iterations"):
        model(k, mask, steps=(1, -1, 1))


# ---- multi-area state: a dict keyed by area name ------------------------------------------------

def _net(t_on=None):
    cfg = MultiAreaConfig(in_channels=1, num_classes=3, steps=6, t_on=t_on,
                          areas=[dict(name="V1", channels=3), dict(name="V2", channels=4, pool=2, cell="convlstm"),
                                 dict(name="IT", channels=5, cell="convgru")],
                          feedback=[dict(source="IT", target="V2")])
    return MultiAreaNetwork(cfg).eval()


def test_multiarea_state_is_a_dict_of_areas():
    model, x = _net(), torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        s = model(x, steps=3).state
    assert list(s) == ["V1", "V2", "IT"] and all(set(v) == {"output", "cell"} for v in s.values())
    assert s["V1"]["cell"] is None                                    # no cell: nothing to carry
    assert isinstance(s["V2"]["cell"], tuple) and len(s["V2"]["cell"]) == 2    # ConvLSTM (h, c)
    assert s["IT"]["output"].shape == (2, 5, 4, 4) and s["IT"]["cell"].shape == (2, 5, 4, 4)
    assert map_state(s, lambda t: t.shape[0]) == {k: {"output": 2, "cell": None if k == "V1" else
                                                      (2, 2) if k == "V2" else 2} for k in s}


def test_multiarea_state_continues_a_run():
    model, x = _net(), torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        full = model(x, steps=5)
        first = model(x, steps=3)
        rest = model(x, steps=2, state=first.state)
    torch.testing.assert_close(rest.output, full.output)
    for k in full.state:
        zip_state(torch.testing.assert_close, rest.state[k], full.state[k])
    with pytest.raises(ValueError, match="dict keyed by the areas V1, V2, IT"):
        model(x, steps=2, state=tuple(first.state.values()))
    with pytest.raises(ValueError, match="state: contains NaN"):
        model(x, steps=2, state=map_state(first.state, lambda t: torch.full_like(t, float("nan"))))


class _ByRow(HaltingPolicy):
    """Row i of the batch halts at step i + 1."""
    readout_every_step = False

    def step(self, n, idx, h, h_prev, y, logit, done):
        halt = (idx + 1 <= n) | (n == self.max_steps)
        return (halt & ~done).float(), halt | done


def test_multiarea_halted_state_is_each_samples_own_halting_step():
    model, x = _net(t_on=3), torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        res = model(x, steps=6, halting=_ByRow())        # halted samples leave the batch
        assert res.steps.tolist() == [1, 2, 3, 4, 5]
        for i, n in enumerate(res.steps.tolist()):
            alone = model(x[i:i + 1], steps=n).state
            zip_state(lambda a, b: torch.testing.assert_close(a[i], b[0]), res.state, alone)


# ---- map_state / zip_state on pytrees -----------------------------------------------------------

_leaf = st.one_of(st.none(), st.integers(1, 3).map(lambda n: torch.arange(float(n))))
_trees = st.recursive(_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.lists(kids, max_size=3).map(tuple),
    st.dictionaries(st.text("abc", min_size=1, max_size=2), kids, max_size=3)), max_leaves=8)


def _same_structure(a, b) -> bool:
    if isinstance(a, torch.Tensor) or a is None:
        return type(a) is type(b)
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same_structure(a[k], b[k]) for k in a)
    return type(a) is type(b) and len(a) == len(b) and all(_same_structure(x, y) for x, y in zip(a, b))


def _leaves(tree) -> list:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if tree is None:
        return []
    return [x for v in (tree.values() if isinstance(tree, dict) else tree) for x in _leaves(v)]


@settings(max_examples=60, deadline=None)
@given(_trees)
def test_map_state_keeps_the_tree_and_maps_every_tensor(tree):
    out = map_state(tree, lambda t: t * 2 + 1)
    assert _same_structure(tree, out)
    assert all(torch.equal(b, a * 2 + 1) for a, b in zip(_leaves(tree), _leaves(out)))
    summed = zip_state(torch.add, tree, out)
    assert _same_structure(tree, summed)
    assert all(torch.equal(s, a * 3 + 1) for a, s in zip(_leaves(tree), _leaves(summed)))


# ---- the validation vocabulary ------------------------------------------------------------------

@given(st.integers(-5, 5), st.integers(-5, 5), st.integers(-5, 5))
def test_check_int_accepts_exactly_the_ints_in_range(v, lo, hi):
    ok = lo <= v <= hi
    if ok:
        assert check_int("k", v, lo, hi) == v
    else:
        with pytest.raises(ValueError, match=f"k must be an int in {lo}..{hi}, got {v}"):
            check_int("k", v, lo, hi)


def test_validation_messages_name_what_was_expected():
    cases = [(lambda: check_positive_int("model config: width", 0), "model config: width must be a positive int, got 0"),
             (lambda: check_int("n", True, 0), "n must be an int >= 0, got True"),
             (lambda: check_int("kernel", 4, 1, odd=True), "kernel must be a positive odd int, got 4"),
             (lambda: check_number("eps", 1.0, 0, 1, max_open=True), r"eps must be a number in \[0, 1\), got 1.0"),
             (lambda: check_number("w", 0, 0, min_open=True), "w must be a number > 0, got 0"),
             (lambda: check_number("w", float("nan")), "w must be a finite number, got nan"),
             (lambda: check_number("w", "1"), "w must be a finite number, got '1'"),
             (lambda: check_choice("amp", "fp8", ("auto", "none", "bf16")), "amp must be one of auto, none, bf16, got 'fp8'"),
             (lambda: check_choice("x", 1, (True, False)), "x must be one of True, False, got 1"),
             (lambda: check_bool("vary", 1), "vary must be true or false, got 1")]
    for fn, msg in cases:
        with pytest.raises(ValueError, match=msg):
            fn()
    assert check_number("p", 0.5, 0, 1) == 0.5 and check_choice("c", None, (None, "a")) is None
    assert check_bool("b", False) is False and check_int("k", 3, 1, odd=True) == 3
