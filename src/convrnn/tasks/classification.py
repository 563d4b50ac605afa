"""Image classification: CIFAR-10/100, ImageFolder and scikit-learn's digits, tensor augmentations
and the trainer glue.

Data sources (every loader returns ``(images, labels, classes)``: numpy images ``(N, C, H, W)``,
int64 labels ``(N,)`` and the list of class names, label ``k`` naming ``classes[k]``):

* CIFAR-10/100, the "python version" (``cifar-10-batches-py``: ``data_batch_1..5``, ``test_batch``,
  ``batches.meta``; ``cifar-100-python``: ``train``, ``test``, ``meta``).  Each batch is a pickled
  dict with ``data`` (N x 3072 uint8, channel-major 32x32) and ``labels`` (CIFAR-100:
  ``fine_labels`` and ``coarse_labels``).  The files were written by Python 2, so their keys are
  byte strings (read with ``encoding="bytes"``).  Unpickling can run arbitrary code, so the files
  are read by :class:`RestrictedUnpickler`, which admits only the globals those files contain
  (numpy's array reconstruction, ``numpy.ndarray``, ``numpy.dtype``) and refuses any other with
  :class:`UnsafePickleError`.  Images come back as uint8 ``(N, 3, 32, 32)``.
* ImageFolder: ``root/<class>/<image>.png|jpg|jpeg``, class names sorted, read with Pillow
  (imported only when needed), uint8 ``(N, C, H, W)``, optionally resized.
* scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes, shipped inside the package, so
  offline): float32 ``(N, 1, 8, 8)`` in [0, 1], optionally upsampled (a ConvRNN with several
  areas needs some spatial extent).

Augmentations work on ``(C, H, W)`` or ``(B, C, H, W)`` tensors (no torchvision), each draw
taken from an explicit ``torch.Generator`` when one is given: :class:`RandomCrop`,
:class:`RandomHorizontalFlip`, :class:`Normalize`, :class:`Compose`.

:class:`ClassificationTask` is the trainer/evaluator glue (cross-entropy, accuracy per image).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .base import Task, parse_levels

__all__ = ["ClassificationDataError", "UnsafePickleError", "RestrictedUnpickler", "load_cifar",
           "load_image_folder", "load_digits", "RandomCrop", "RandomHorizontalFlip", "Normalize", "Compose",
           "ClassificationTask", "DATASETS", "IMAGE_EXTENSIONS", "to_tensors", "split_train_val"]

DATASETS = ("digits", "cifar10", "cifar100", "folder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
CIFAR10_DIR, CIFAR100_DIR = "cifar-10-batches-py", "cifar-100-python"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class ClassificationDataError(ValueError):
    """A data file is missing, truncated or not in the expected layout (the message names it)."""


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the allowed set (the message names the file and the global)."""


# --------------------------------------------------------------------------- restricted unpickling

def _latin1_encode(obj, encoding="latin1"):
    """Stand-in for ``_codecs.encode`` (how Python 3 writes ``bytes`` at pickle protocol <= 2):
    latin-1 only, str in, bytes out, and nothing else."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode: only latin-1 encoding of a str is allowed, "
                                     f"got {type(obj).__name__} with {encoding!r}")
    return obj.encode("latin-1")


#: the most elements one pickled array may declare (CIFAR-100's train batch: 50,000 x 3072)
MAX_PICKLED_ARRAY_ELEMENTS = 2**28


class _NdarrayType:
    """What the pickle gets for ``numpy.ndarray``: an argument for :func:`_safe_reconstruct` only.
    Calling it (``ndarray(shape, dtype)`` makes an array of uninitialised memory) is refused."""

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError("refused to call numpy.ndarray from the pickle (it allocates uninitialised memory); "
                                "only numpy's array reconstruction may build arrays")


_NDARRAY = _NdarrayType()


class _CheckedArray(np.ndarray):
    """An empty array whose ``__setstate__`` (the pickle's BUILD) checks the declared shape and dtype
    against the bytes given before numpy allocates; turned into a plain ndarray after loading."""

    def __setstate__(self, state):
        try:
            _, shape, dtype, _, raw = state
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise pickle.UnpicklingError("malformed numpy array state in the pickle") from None
        if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biuf":
            raise UnsafePickleError(f"refused a numpy array of dtype {dtype!r} (only numeric arrays are allowed)")
        count = 1
        for d in shape:
            if d < 0:
                raise pickle.UnpicklingError(f"numpy array with a negative dimension {shape}")
            count *= d
        if count > MAX_PICKLED_ARRAY_ELEMENTS:
            raise pickle.UnpicklingError(f"numpy array of shape {shape} declares {count} elements, over the limit "
                                         f"of {MAX_PICKLED_ARRAY_ELEMENTS}")
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dtype.itemsize:
            got = len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__
            raise pickle.UnpicklingError(f"numpy array of shape {shape} {dtype} needs {count * dtype.itemsize} "
                                         f"bytes, the pickle holds {got}")
        super().__setstate__(state)


def _safe_reconstruct(subtype, shape, typecode):
    """``numpy.core.multiarray._reconstruct`` as pickled arrays call it (``ndarray, (0,), b'b'``),
    and nothing else: an empty array that :class:`_CheckedArray` fills."""
    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise UnsafePickleError(f"refused numpy _reconstruct({subtype!r}, {shape!r}, ...) (only plain ndarrays)")
    return np.ndarray.__new__(_CheckedArray, (0,), np.uint8)


def _safe_dtype(name, align=False, copy=True):
    """``numpy.dtype`` for the numeric type codes arrays are pickled with (``'u1'``, ``'<f4'``...)."""
    if isinstance(name, bytes):
        name = name.decode("latin-1")
    if not isinstance(name, str) or len(name) > 8:
        raise UnsafePickleError(f"refused numpy.dtype({name!r}) (only numeric type codes are allowed)")
    try:
        dt = np.dtype(name)
    except TypeError:
        raise pickle.UnpicklingError(f"unknown numpy dtype {name!r}") from None
    if dt.hasobject or dt.kind not in "biuf":
        raise UnsafePickleError(f"refused numpy.dtype({name!r}) (only numeric dtypes are allowed)")
    return dt


def _allowed_globals() -> dict:
    return {
        ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,    # what the Python 2 files name
        ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,   # the same, pickled by numpy >= 2
        ("numpy", "ndarray"): _NDARRAY,           # an argument of _reconstruct only, never called
        ("numpy", "dtype"): _safe_dtype,
        ("_codecs", "encode"): _latin1_encode,   # bytes re-saved by Python 3 at protocol 2 (a safe stand-in)
    }


def _plain(obj):
    """The loaded object with every :class:`_CheckedArray` turned into a plain ndarray."""
    if isinstance(obj, _CheckedArray):
        return obj.view(np.ndarray)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers, numbers, strings and numpy arrays.

    ``find_class`` admits numpy's array reconstruction (``numpy.core.multiarray._reconstruct`` and
    its numpy >= 2 name ``numpy._core.multiarray._reconstruct``), ``numpy.ndarray`` and
    ``numpy.dtype``, which is all the CIFAR files contain, plus ``_codecs.encode`` (how Python 3
    writes bytes at protocol 2), each served by a stand-in that admits only the calls those files
    make: ``ndarray`` cannot be called (only passed to ``_reconstruct``), ``dtype`` takes numeric
    type codes only, ``encode`` latin-1 strings only, and an array's declared shape and dtype are
    checked against the bytes it holds (and a size cap) before numpy allocates.  Any other global
    raises :class:`UnsafePickleError` before it is looked up, so a payload never runs.
    ``persistent_load`` is refused as well.
    """

    def __init__(self, file, *, name: str = "<pickle>", encoding: str = "bytes"):
        super().__init__(file, encoding=encoding)
        self.name = name
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        fn = self._allowed.get((module, name))
        if fn is None:
            raise UnsafePickleError(f"{self.name}: refused to load global {module}.{name} from the pickle (only "
                                    "numpy arrays and plain containers are allowed); the file is not a CIFAR "
                                    "batch or has been tampered with")
        return fn

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.name}: refused a persistent id in the pickle")

    def load(self):
        try:
            return _plain(super().load())
        except UnsafePickleError as e:
            msg = e.args[0]
            raise UnsafePickleError(msg if msg.startswith(self.name) else f"{self.name}: {msg}") from None


def _load_pickle(path: Path) -> dict:
    """A CIFAR pickle as a dict with str keys (the Python 2 byte-string keys decoded)."""
    path = Path(path)
    if not path.is_file():
        raise ClassificationDataError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, name=str(path)).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(e.args[0] if str(path) in e.args[0] else f"{path}: {e.args[0]}") from None
    except Exception as e:   # truncated / corrupt: EOFError, UnpicklingError, ValueError, ...
        raise ClassificationDataError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise ClassificationDataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _names(d: dict, key: str, path: Path) -> list[str]:
    if key not in d:
        raise ClassificationDataError(f"{path}: no {key!r} entry (keys: {sorted(map(str, d))})")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in d[key]]


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _load_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise ClassificationDataError(f"{path}: no {key!r} entry (keys: {sorted(map(str, d))})")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ClassificationDataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    try:
        labels = np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise ClassificationDataError(f"{path}: {label_key!r} is not a list of integers ({e})") from None
    if labels.shape != (len(data),):
        raise ClassificationDataError(f"{path}: {len(data)} images but {label_key!r} has shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_root(root: Path) -> tuple[Path, str]:
    """(folder holding the batches, "cifar10" | "cifar100") for the folder itself or its parent."""
    for cand in (root, root / CIFAR10_DIR, root / CIFAR100_DIR):
        if (cand / "batches.meta").is_file() or (cand / "test_batch").is_file() or (cand / "data_batch_1").is_file():
            return cand, "cifar10"
        if (cand / "meta").is_file() or (cand / "train").is_file() or (cand / "test").is_file():
            return cand, "cifar100"
    raise ClassificationDataError(f"{root}: no CIFAR batches found (expected data_batch_1..5/test_batch/batches.meta "
                                  f"for CIFAR-10 or train/test/meta for CIFAR-100, in the folder or in "
                                  f"{CIFAR10_DIR}/ or {CIFAR100_DIR}/ below it)")


def load_cifar(root, train: bool = True, labels: str = "fine") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10 or CIFAR-100 (python version) from ``root``: uint8 images ``(N, 3, 32, 32)``, int64
    labels and class names.

    ``root`` is the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``) or its parent;
    which of the two it is is told by the file names.  ``labels`` picks CIFAR-100's ``"fine"`` (100
    classes) or ``"coarse"`` (20 superclasses) labels; it is ignored for CIFAR-10.
    """
    root, kind = _cifar_root(Path(root))
    if kind == "cifar10":
        files = CIFAR10_TRAIN if train else ("test_batch",)
        classes = _names(_load_pickle(root / "batches.meta"), "label_names", root / "batches.meta")
        label_key = "labels"
    else:
        if labels not in ("fine", "coarse"):
            raise ValueError(f"labels: expected 'fine' or 'coarse', got {labels!r}")
        files = ("train",) if train else ("test",)
        classes = _names(_load_pickle(root / "meta"), f"{labels}_label_names", root / "meta")
        label_key = f"{labels}_labels"
    parts = [_cifar_batch(root / f, label_key) for f in files]
    x = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    y = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    if len(y) and (y.min() < 0 or y.max() >= len(classes)):
        raise ClassificationDataError(f"{root}: labels run from {y.min()} to {y.max()} but there are "
                                      f"{len(classes)} class names")
    return np.ascontiguousarray(x), y, classes


# --------------------------------------------------------------------------- ImageFolder

def _size_hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"size: expected positive ints, got {size!r}")
    return int(h), int(w)


def load_image_folder(root, size=None, mode: str = "RGB") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images under ``root/<class>/`` (.png/.jpg/.jpeg, case-insensitive; other files ignored) as uint8
    ``(N, C, H, W)`` (C = 3 for ``mode="RGB"``, 1 for ``"L"``), int64 labels and the sorted class names.

    ``size`` (int or ``(H, W)``) resizes every image (bilinear); without it all images must already
    share one size.  A file Pillow cannot read raises :class:`ClassificationDataError` naming it.
    """
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("load_image_folder needs Pillow: pip install pillow") from None
    root = Path(root)
    if not root.is_dir():
        raise ClassificationDataError(f"{root}: not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ClassificationDataError(f"{root}: no class folders (expected root/<class>/<image>.png|jpg)")
    hw = _size_hw(size)
    images, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(p for p in (root / c).iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        for p in files:
            try:
                with Image.open(p) as im:
                    im = im.convert(mode)
                    if hw is not None and im.size != (hw[1], hw[0]):
                        im = im.resize((hw[1], hw[0]), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.uint8)
            except Exception as e:   # UnidentifiedImageError, truncated data, decompression bomb, ...
                raise ClassificationDataError(f"{p}: not a readable image ({type(e).__name__}: {e})") from e
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if images and a.shape != images[0].shape:
                raise ClassificationDataError(f"{p}: image is {a.shape[2]}x{a.shape[1]} but earlier ones are "
                                              f"{images[0].shape[2]}x{images[0].shape[1]}; pass size= to resize")
            images.append(a)
            labels.append(k)
    if not images:
        raise ClassificationDataError(f"{root}: no {'/'.join(IMAGE_EXTENSIONS)} images in the class folders")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


# --------------------------------------------------------------------------- digits

def load_digits(size=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's 8x8 digits: float32 ``(1797, 1, 8, 8)`` in [0, 1] (raw 0..16 divided by 16), int64
    labels and class names ``"0".."9"``.  ``size`` (int or ``(H, W)``) upsamples bilinearly."""
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError:
        raise ImportError("the digits dataset comes with scikit-learn: pip install scikit-learn") from None
    d = _sk_digits()
    x = (np.asarray(d.images, dtype=np.float32) / 16.0)[:, None]
    hw = _size_hw(size)
    if hw is not None and hw != x.shape[2:]:
        import torch
        import torch.nn.functional as F
        x = F.interpolate(torch.from_numpy(x), size=hw, mode="bilinear", align_corners=False).clamp_(0, 1).numpy()
    return np.ascontiguousarray(x), np.asarray(d.target, dtype=np.int64), [str(i) for i in range(10)]


# --------------------------------------------------------------------------- augmentations

def _batched(x):
    import torch
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"expected a (C, H, W) or (B, C, H, W) tensor, got {shape}")
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


class RandomCrop:
    """Pad each image by ``padding`` on every side, then crop a ``size`` window (default: the input's
    size) at a random offset drawn per image.  ``padding_mode``: ``constant`` (with ``fill``),
    ``reflect`` or ``replicate``.  ``padding=0`` with the default size returns the input unchanged."""

    def __init__(self, padding: int = 4, size=None, fill: float = 0.0, padding_mode: str = "constant"):
        if int(padding) < 0:
            raise ValueError(f"padding: expected >= 0, got {padding}")
        if padding_mode not in ("constant", "reflect", "replicate"):
            raise ValueError(f"padding_mode: expected constant, reflect or replicate, got {padding_mode!r}")
        self.padding, self.size, self.fill, self.padding_mode = int(padding), _size_hw(size), fill, padding_mode

    def __call__(self, x, generator=None):
        import torch
        import torch.nn.functional as F
        xb, single = _batched(x)
        B, _, H, W = xb.shape
        h, w = self.size or (H, W)
        p = self.padding
        if h > H + 2 * p or w > W + 2 * p:
            raise ValueError(f"RandomCrop: crop {h}x{w} is larger than the padded image {H + 2 * p}x{W + 2 * p}")
        if p:
            kw = {"value": self.fill} if self.padding_mode == "constant" else {}
            xb = F.pad(xb, (p, p, p, p), mode=self.padding_mode, **kw)
        oy = torch.randint(0, H + 2 * p - h + 1, (B,), generator=generator)
        ox = torch.randint(0, W + 2 * p - w + 1, (B,), generator=generator)
        rows = (oy[:, None] + torch.arange(h)).to(xb.device)          # (B, h)
        cols = (ox[:, None] + torch.arange(w)).to(xb.device)          # (B, w)
        bi = torch.arange(B, device=xb.device)[:, None, None]
        out = xb[bi, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()   # (B, C, h, w)
        return out[0] if single else out

    def __repr__(self):
        return f"RandomCrop(padding={self.padding}, size={self.size}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (one draw per image)."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, generator=None):
        import torch
        xb, single = _batched(x)
        flip = (torch.rand(len(xb), generator=generator) < self.p).to(xb.device)
        out = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        return out[0] if single else out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """``(x - mean) / std`` per channel; floating-point input only (deterministic)."""

    def __init__(self, mean, std):
        self.mean = [float(m) for m in np.atleast_1d(mean)]
        self.std = [float(s) for s in np.atleast_1d(std)]
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"Normalize: mean and std need the same length and std > 0, got {mean!r}, {std!r}")

    def __call__(self, x, generator=None):
        import torch
        xb, single = _batched(x)
        if not xb.is_floating_point():
            raise TypeError(f"Normalize: expected a floating-point tensor, got {xb.dtype}; convert with x.float()")
        C = xb.shape[1]
        if len(self.mean) not in (1, C):
            raise ValueError(f"Normalize: {len(self.mean)} means for {C} channels")
        m = torch.tensor(self.mean, dtype=xb.dtype, device=xb.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, dtype=xb.dtype, device=xb.device).view(1, -1, 1, 1)
        out = (xb - m) / s
        return out[0] if single else out

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply ``transforms`` in order, handing each the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, generator=None):
        for t in self.transforms:
            x = t(x, generator=generator)
        return x

    def __repr__(self):
        return f"Compose({self.transforms})"


# --------------------------------------------------------------------------- trainer glue

def to_tensors(x, y):
    """Images (uint8 scaled to [0, 1], or float) as float32 and labels as int64 tensors."""
    import torch
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    return t, torch.from_numpy(np.asarray(y, dtype=np.int64))


def split_train_val(x, y, val_fraction: float, split_seed: int):
    """``((x_train, y_train), (x_val, y_val))``: ``val_fraction`` held out (at least one) by a permutation
    seeded with ``split_seed``, each part in the original order; independent of any training seed."""
    n = len(y)
    n_val = max(1, int(round(n * val_fraction)))
    perm = np.random.default_rng(split_seed).permutation(n)
    tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    return (x[tr], y[tr]), (x[va], y[va])



class ClassificationTask(Task):
    """Trainer/evaluator glue for image classification: images as float32 in [0, 1], integer labels,
    cross-entropy, accuracy per image.

    ``dataset``: ``digits`` (embedded, split into train/val by ``split_seed`` with ``val_fraction``
    held out), ``cifar10``/``cifar100`` (``root`` or the config's ``data``: train batches for
    training, the test batch for validation) or ``folder`` (``root/train`` and ``root/val`` when both
    exist, otherwise one ImageFolder split like digits).  ``size`` resizes/upsamples (digits default
    to 16x16).  The split does not depend on the training seed, so evaluation always gets the
    held-out images.  The trainer builds the task from the config's ``data_kwargs`` (e.g.
    ``{"dataset": "cifar10", "size": 32}``); the config's ``data`` is the folder.  ``eval_data(level, ...)`` returns the validation images with Gaussian noise of
    standard deviation ``level`` (0: clean), clipped to [0, 1]; harder inputs for adaptive halting.
    ``augment`` is the train-time transform (random crop + flip for CIFAR, None otherwise) that
    :func:`convrnn.train.train` applies to every training batch with a generator seeded by
    ``(seed, step)``, so a resumed run sees the same images.
    """

    name = "classification"
    OPTIONS = ("dataset", "root", "size", "labels", "val_fraction", "split_seed")

    def __init__(self, dataset: str = "digits", root=None, size=None, labels: str = "fine",
                 val_fraction: float = 0.2, split_seed: int = 0, **unknown):
        if unknown:
            from ..errors import check_keys
            check_keys("classification data_kwargs", unknown, self.OPTIONS)
        if dataset not in DATASETS:
            from ..errors import unknown_name
            raise unknown_name("dataset", dataset, DATASETS)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction}")
        self.dataset, self.root, self.labels = dataset, root, labels
        self._size_arg = size
        self.size = (16 if dataset == "digits" else None) if size is None else size
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self.classes: list[str] | None = None
        self._cache: dict = {}
        self.augment = Compose([RandomCrop(4), RandomHorizontalFlip(0.5)]) if dataset.startswith("cifar") else None

    def _split(self, x, y):
        return split_train_val(x, y, self.val_fraction, self.split_seed)

    def _load(self, root=None):
        root = root or self.root
        key = str(root)
        if key in self._cache:
            return self._cache[key]
        if self.dataset != "digits" and root is None:
            raise ValueError(f"classification dataset {self.dataset!r} needs a folder: pass root= or set the "
                             "config's data")
        if self.dataset == "digits":
            x, y, classes = load_digits(self.size)
            train, val = self._split(x, y)
        elif self.dataset in ("cifar10", "cifar100"):
            _, kind = _cifar_root(Path(root))
            if kind != self.dataset:
                raise ClassificationDataError(f"{root}: holds {kind} batches, not {self.dataset}")
            *train, classes = load_cifar(root, True, self.labels)
            *val, _ = load_cifar(root, False, self.labels)
            if self.size is not None:
                train, val = (self._resize(*train), self._resize(*val))
        else:
            r = Path(root)
            if (r / "train").is_dir() and (r / "val").is_dir():
                *train, classes = load_image_folder(r / "train", self.size)
                *val, vc = load_image_folder(r / "val", self.size)
                if vc != classes:
                    raise ClassificationDataError(f"{r / 'val'}: classes {vc} differ from {r / 'train'}: {classes}")
            else:
                x, y, classes = load_image_folder(r, self.size)
                train, val = self._split(x, y)
        self.classes = classes
        out = self._cache[key] = (to_tensors(*train), to_tensors(*val))
        return out

    def _resize(self, x, y):
        import torch
        import torch.nn.functional as F
        t = F.interpolate(torch.from_numpy(x).float(), size=_size_hw(self.size), mode="bilinear",
                          align_corners=False)
        return t.round_().clamp_(0, 255).to(torch.uint8).numpy(), y

    def options(self) -> dict:
        return {"dataset": self.dataset, "root": self.root, "size": self._size_arg, "labels": self.labels,
                "val_fraction": self.val_fraction, "split_seed": self.split_seed}

    def datasets(self, cfg):
        """Training and validation tensors (the config's ``data``: the folder); criterion and correct are
        :class:`~convrnn.tasks.base.Task`'s (cross-entropy, argmax)."""
        self.check_config(cfg)
        return self._load(cfg.data)

    @classmethod
    def eval_levels(cls, args) -> list:
        return parse_levels(args.noise, float)

    @classmethod
    def eval_options(cls, args, run_config: dict) -> dict:
        """The training run's dataset options."""
        return dict(run_config.get("data_kwargs", {}))

    def eval_data(self, level, n, seed, data=None):
        """The first ``n`` validation images, plus N(0, level^2) noise (seeded by ``seed``) when level > 0."""
        import torch
        _, (x, y) = self._load(data)
        x, y = x[:n], y[:n]
        sigma = float(level or 0)
        if sigma < 0:
            raise ValueError(f"level: the noise standard deviation must be >= 0, got {level}")
        if sigma > 0:
            g = torch.Generator().manual_seed(int(seed))
            x = (x + sigma * torch.randn(x.shape, generator=g)).clamp_(0, 1)
        return x.clone(), y.clone()
