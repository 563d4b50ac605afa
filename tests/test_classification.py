"""Image classification data: CIFAR pickles through the restricted unpickler, ImageFolder, digits,
tensor augmentations and the task glue."""
import io
import os
import pickle
import pickletools

import numpy as np
import pytest
import torch

from convrnn.config import TrainConfig
from convrnn.tasks.classification import (ClassificationDataError, ClassificationTask, Compose, Normalize,
                                          RandomCrop, RandomHorizontalFlip, RestrictedUnpickler, UnsafePickleError,
                                          load_cifar, load_digits, load_image_folder)


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING), like the original CIFAR files."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)
    dispatch[bytes] = save_bytes


def _py2_dumps(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x / Python 2 name the reconstructor numpy.core.multiarray (GLOBAL is text at protocol 2)
    return buf.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _globals(blob: bytes) -> set:
    return {arg for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"}


def _batch(n, seed, label_keys=(b"labels",), n_classes=10):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"synthetic", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [b"img_%d.png" % i for i in range(n)]}
    for k in label_keys:
        d[k] = rng.integers(0, n_classes, n).tolist()
    return d


def _write_cifar10(root, py2=True, n=4):
    root.mkdir(parents=True, exist_ok=True)
    dumps = _py2_dumps if py2 else (lambda o: pickle.dumps(o, protocol=2))
    batches = {f"data_batch_{i}": _batch(n, i) for i in range(1, 6)}
    batches["test_batch"] = _batch(n, 9)
    batches["batches.meta"] = {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": n}
    for name, d in batches.items():
        (root / name).write_bytes(dumps(d))
    return batches


def test_restricted_unpickler_reads_python2_and_protocol2_cifar_batches(tmp_path):
    blob = _py2_dumps(_batch(3, 0))
    assert _globals(blob) == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    for b in (blob, pickle.dumps(_batch(3, 0), protocol=2)):
        d = RestrictedUnpickler(io.BytesIO(b)).load()
        assert d[b"data"].dtype == np.uint8 and d[b"data"].shape == (3, 3072)
        np.testing.assert_array_equal(d[b"data"], _batch(3, 0)[b"data"])
        assert d[b"batch_label"] == b"synthetic"

    batches = _write_cifar10(tmp_path / "cifar-10-batches-py")
    x, y, classes = load_cifar(tmp_path)                        # the parent folder works too
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    assert classes == [f"c{i}" for i in range(10)]
    np.testing.assert_array_equal(x[:4].reshape(4, -1), batches["data_batch_1"][b"data"])
    np.testing.assert_array_equal(y[16:], batches["data_batch_5"][b"labels"])
    xt, yt, _ = load_cifar(tmp_path / "cifar-10-batches-py", train=False)
    assert xt.shape == (4, 3, 32, 32) and yt.tolist() == batches["test_batch"][b"labels"]
    # channel-major: the first 1024 bytes are the red plane
    np.testing.assert_array_equal(xt[1, 0].ravel(), batches["test_batch"][b"data"][1, :1024])


def test_restricted_unpickler_refuses_code_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    _write_cifar10(tmp_path / "cifar-10-batches-py")
    for proto in (0, 2, 4):
        path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
        path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=proto))
        with pytest.raises(UnsafePickleError, match=r"data_batch_1.*(posix|nt)\.system"):
            load_cifar(tmp_path / "cifar-10-batches-py")
        assert not marker.exists()
    pickle.loads(path.read_bytes())   # control: the payload is live, plain pickle runs it
    assert marker.exists()
    for module, name in (("builtins", "eval"), ("numpy", "load"), ("_codecs", "decode")):
        blob = f"c{module}\n{name}\n(tR.".encode()
        with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
            RestrictedUnpickler(io.BytesIO(blob), name="x.pkl").load()
    with pytest.raises(pickle.UnpicklingError, match="latin-1"):   # the _codecs.encode stand-in is latin-1 only
        RestrictedUnpickler(io.BytesIO(b"c_codecs\nencode\n(X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13tR.")).load()


def test_cifar100_layout_labels_and_corrupt_files(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    tr = _batch(6, 1, (b"fine_labels", b"coarse_labels"), 20)
    (root / "train").write_bytes(_py2_dumps(tr))
    (root / "test").write_bytes(_py2_dumps(_batch(2, 2, (b"fine_labels", b"coarse_labels"), 20)))
    (root / "meta").write_bytes(_py2_dumps({b"fine_label_names": [b"f%d" % i for i in range(100)],
                                            b"coarse_label_names": [b"s%d" % i for i in range(20)]}))
    x, y, classes = load_cifar(root)
    assert x.shape == (6, 3, 32, 32) and len(classes) == 100 and y.tolist() == tr[b"fine_labels"]
    x, y, classes = load_cifar(tmp_path, train=False, labels="coarse")
    assert x.shape == (2, 3, 32, 32) and classes[:2] == ["s0", "s1"] and len(classes) == 20

    blob = (root / "train").read_bytes()
    (root / "train").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ClassificationDataError, match=r"cifar-100-python[/\\]train"):
        load_cifar(root)
    (root / "train").unlink()
    with pytest.raises(ClassificationDataError, match=r"train: file not found"):
        load_cifar(root)
    with pytest.raises(ClassificationDataError, match="no CIFAR batches"):
        load_cifar(tmp_path / "empty")


def test_image_folder_round_trip_resize_and_corrupt_png(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    imgs = {}
    for c in ("dog", "cat"):
        (tmp_path / c).mkdir()
        for i in range(2):
            a = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
            Image.fromarray(a).save(tmp_path / c / f"{i}.png")
            imgs[c, i] = a
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    x, y, classes = load_image_folder(tmp_path)
    assert classes == ["cat", "dog"] and y.tolist() == [0, 0, 1, 1]
    assert x.shape == (4, 3, 5, 7) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[3], imgs["dog", 1].transpose(2, 0, 1))    # PNG is lossless
    xs, _, _ = load_image_folder(tmp_path, size=(4, 6), mode="L")
    assert xs.shape == (4, 1, 4, 6)

    bad = tmp_path / "dog" / "2.png"
    bad.write_bytes((tmp_path / "dog" / "0.png").read_bytes()[:40])
    with pytest.raises(ClassificationDataError, match=r"dog[/\\]2\.png"):
        load_image_folder(tmp_path)


def test_digits_shapes_ranges_upsampling_and_split():
    pytest.importorskip("sklearn")
    x, y, classes = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0 and sorted(set(y.tolist())) == list(range(10)) and len(classes) == 10
    x16, _, _ = load_digits(16)
    assert x16.shape == (1797, 1, 16, 16) and 0.0 <= x16.min() and x16.max() <= 1.0

    cfg = TrainConfig()
    (xt, yt), (xv, yv) = ClassificationTask("digits", size=16).datasets(cfg)
    assert xt.shape[1:] == (1, 16, 16) and len(xt) + len(xv) == 1797 and len(xv) == 359
    (xt2, _), (xv2, yv2) = ClassificationTask("digits", size=16).datasets(cfg)
    assert torch.equal(xv, xv2) and torch.equal(yv, yv2) and torch.equal(xt, xt2)
    (_, _), (xv3, _) = ClassificationTask("digits", size=16, split_seed=1).datasets(cfg)
    assert not torch.equal(xv, xv3)
    # train and val are disjoint: no validation image appears in the training set
    assert not (xv[:20, None] == xt[None]).flatten(2).all(2).any()
    cfg4 = TrainConfig.from_dict({"data_kwargs": {"dataset": "digits", "size": 12}})
    task = ClassificationTask(**cfg4.data_kwargs)    # the trainer builds it from the data_kwargs
    (xt4, _), _ = task.datasets(cfg4)
    assert task.dataset == "digits" and xt4.shape == (len(xt), 1, 12, 12)
    with pytest.raises(ValueError, match="unknown classification data_kwargs key"):
        ClassificationTask(**{"dataset": "digits", "sise": 12})


def test_task_glue_criterion_correct_and_eval_data(tmp_path):
    _write_cifar10(tmp_path / "c10", py2=False)
    task = ClassificationTask("cifar10", root=tmp_path / "c10")
    (xt, yt), (xv, yv) = task.datasets(TrainConfig())
    assert xt.shape == (20, 3, 32, 32) and xt.dtype == torch.float32 and 0 <= xt.min() and xt.max() <= 1
    assert task.classes[0] == "c0" and len(xv) == 4
    logits = torch.nn.functional.one_hot(yv, 10).float() * 5
    logits[0] = torch.roll(logits[0], 1)
    assert task.correct(logits, yv, xv).tolist() == [False, True, True, True]
    crit = task.criterion(xv, TrainConfig())
    assert crit(logits, yv).dim() == 0 and crit(logits, yv, reduce=False).shape == (4,)
    x0, y0 = task.eval_data(0, 3, seed=1)
    assert torch.equal(x0, xv[:3]) and torch.equal(y0, yv[:3])
    xn, _ = task.eval_data(0.2, 3, seed=1)
    assert torch.equal(xn, task.eval_data("0.2", 3, seed=1)[0]) and not torch.equal(xn, x0)
    assert 0 <= xn.min() and xn.max() <= 1
    with pytest.raises(ClassificationDataError, match="not cifar100"):
        ClassificationTask("cifar100", root=tmp_path / "c10").datasets(TrainConfig())
    with pytest.raises(ValueError, match="unknown dataset 'cifar1'"):
        ClassificationTask("cifar1")


def test_augmentations_are_seeded_shape_preserving_and_exact():
    x = torch.rand(6, 3, 8, 8)
    aug = Compose([RandomCrop(2), RandomHorizontalFlip(0.5), Normalize([0.5] * 3, [0.25] * 3)])
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, aug(x, generator=torch.Generator().manual_seed(4)))
    assert aug(x[0], generator=torch.Generator().manual_seed(3)).shape == (3, 8, 8)

    assert torch.equal(RandomHorizontalFlip(1.0)(x), x[..., torch.arange(7, -1, -1)])
    assert torch.equal(RandomHorizontalFlip(0.0)(x), x)
    assert torch.equal(RandomCrop(0)(x, generator=torch.Generator().manual_seed(0)), x)
    # every padded crop is the image shifted: its inner part matches some window of the original
    c = RandomCrop(1)(x, generator=torch.Generator().manual_seed(0))
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(len(x)):
        assert any(torch.equal(c[i], pad[i, :, dy:dy + 8, dx:dx + 8]) for dy in range(3) for dx in range(3))
    assert RandomCrop(2, size=6)(x).shape == (6, 3, 6, 6)
    n = Normalize([0.5, 0.0, 1.0], [0.5, 1.0, 2.0])(x)
    assert torch.allclose(n[:, 0], (x[:, 0] - 0.5) / 0.5) and torch.allclose(n[:, 2], (x[:, 2] - 1.0) / 2.0)
    with pytest.raises(TypeError, match="floating-point"):
        Normalize(0.5, 0.5)(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        RandomCrop(1)(torch.zeros(2, 2))


def test_feedback_dropout_cifar10_trains_with_seeded_augmentation_and_resumes_identically(tmp_path, monkeypatch):
    """The bundled CIFAR-10 experiment trains with crop + flip: the trainer passes every training batch
    through ``task.augment`` with the generator of ``(seed, step)``, so an interrupted run resumed from its
    checkpoint ends with the uninterrupted run's weights."""
    import dataclasses
    import json

    from safetensors.torch import load_file

    import convrnn.train as train_mod
    from convrnn.experiment import load_experiment, run_configs
    _write_cifar10(tmp_path / "c10", n=4)            # 20 training images: 3 batches of 8, 8, 4 per epoch
    exp = load_experiment("feedback_dropout_cifar10", [
        f"base.data={tmp_path / 'c10'}", "base.epochs=2", "base.batch_size=8", "base.steps=2",
        "base.model_kwargs.width=0.125", "base.device=cpu", "base.channels_last=false", "base.num_threads=1",
        "base.ckpt_every=2", "base.amp=none", "seeds=[0]"])
    cfg = run_configs(exp, tmp_path / "exp")[0]["fb"][0]      # feedback, no dropout: all randomness seeded
    assert cfg.data_kwargs == {"dataset": "cifar10"}

    seen = []
    call = Compose.__call__

    def spy(self, x, generator=None):
        out = call(self, x, generator=generator)
        seen.append((len(x), generator.initial_seed(), not torch.equal(out, x)))
        return out

    monkeypatch.setattr(Compose, "__call__", spy)
    threads = torch.get_num_threads()
    try:
        train_mod.train(cfg, progress=False)
        assert [n for n, _, _ in seen] == [8, 8, 4] * 2                   # every training batch, once
        assert [s for _, s, _ in seen] == [train_mod.augment_generator(cfg, k).initial_seed() for k in range(6)]
        assert all(changed for _, _, changed in seen)

        class Interrupted(Exception):
            pass

        lr_factor = train_mod.lr_factor

        def stop_at_5(c, step, *a, **kw):       # called at the start of every step: interrupt before step 5
            if step >= 5:
                raise Interrupted
            return lr_factor(c, step, *a, **kw)

        cfg_b = dataclasses.replace(cfg, out_dir=str(tmp_path / "b"))
        monkeypatch.setattr(train_mod, "lr_factor", stop_at_5)
        with pytest.raises(Interrupted):
            train_mod.train(cfg_b, progress=False)
        assert json.loads((tmp_path / "b" / "checkpoint" / "trainer.json").read_text())["step"] == 4
        monkeypatch.setattr(train_mod, "lr_factor", lr_factor)
        seen.clear()
        train_mod.train(cfg_b, resume=True, progress=False)
        assert [s for _, s, _ in seen] == [train_mod.augment_generator(cfg, k).initial_seed() for k in (4, 5)]
    finally:
        torch.set_num_threads(threads)
    wa = load_file(str(tmp_path / "exp" / "runs" / "fb" / "seed0" / "model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
