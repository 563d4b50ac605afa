"""Atomic file writes: a killed process leaves either the old file or the new one, never half."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path, write, fsync: bool = True) -> None:
    """Call ``write(f)`` on a binary temporary file in ``path``'s folder, then ``os.replace`` it onto
    ``path``. ``fsync=False`` skips the flush to disk (for many small files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def json_ready(obj):
    """Plain-Python, strict-JSON data: numpy/torch scalars and arrays become numbers and lists, tuples
    lists, and non-finite floats (NaN, inf) ``None``."""
    import math
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (int, float, str)):     # numpy arrays/scalars, tensors
        return json_ready(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


# ---- one process per run folder -----------------------------------------------------------------

class RunLockedError(OSError):
    """A run folder is owned by another live process (the message names the folder and its pid)."""


LOCK_NAME = ".lock"


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` exist on this host (also when another user owns it)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True          # exists, owned by another user
    return True


class RunLock:
    """Own the folder ``path`` for as long as the ``with`` block runs (a training run's ``out_dir``).

    The lock is the file ``<path>/.lock`` holding the owner's pid and host, plus an exclusive
    ``flock`` on it where the platform has one (released by the kernel when the owner dies, even by
    SIGKILL). A lock left by a dead process (its pid is gone, on this host) is stale and taken over;
    one held by a live process raises :class:`RunLockedError` naming the folder and the pid."""

    def __init__(self, path):
        self.dir = Path(path)
        self.path = self.dir / LOCK_NAME
        self._fd = None
        self._made_dir = False

    def _owner(self) -> dict:
        import json
        try:
            d = json.loads(self.path.read_text() or "{}")
            return d if isinstance(d, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refuse(self, owner: dict):
        pid, host = owner.get("pid", "?"), owner.get("host", "?")
        raise RunLockedError(f"{self.dir}: run folder in use by process {pid} on {host} (lock {self.path}); wait for "
                             "it to end or choose another out_dir")

    def acquire(self) -> "RunLock":
        import json
        import socket
        self._made_dir = not self.dir.exists()
        self.dir.mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        me = json.dumps({"pid": os.getpid(), "host": host}).encode()
        try:
            import fcntl
        except ImportError:          # pragma: no cover - no flock (Windows): pid check only
            fcntl = None
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    self._refuse(self._owner())
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:             # the previous owner removed the file meanwhile: lock the new one
                    os.close(fd)
                    continue
            else:
                owner = self._owner()
                pid = owner.get("pid")
                if isinstance(pid, int) and pid != os.getpid() and owner.get("host") == host and pid_alive(pid):
                    os.close(fd)
                    self._refuse(owner)
            os.ftruncate(fd, 0)
            os.write(fd, me)
            self._fd = fd
            return self
        raise RunLockedError(f"{self.dir}: could not take the lock {self.path} (it keeps changing)")

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if self._made_dir:
            try:
                self.dir.rmdir()         # only when the run wrote nothing
            except OSError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


# ---- size caps on numpy files -------------------------------------------------------------------

#: the most bytes one array of a data file may declare (``CONVRNN_MAX_ARRAY_BYTES`` overrides it)
MAX_ARRAY_BYTES = 16 * 2**30
#: deflate cannot compress better than about 1032:1; a zip member claiming more is a bomb or a lie
MAX_DEFLATE_RATIO = 1100


def max_array_bytes() -> int:
    v = os.environ.get("CONVRNN_MAX_ARRAY_BYTES")
    try:
        return int(v) if v else MAX_ARRAY_BYTES
    except ValueError:
        raise ValueError(f"CONVRNN_MAX_ARRAY_BYTES must be an int (bytes), got {v!r}") from None


def _npy_header(f, where: str, available: int, error) -> None:
    """Read a .npy header from ``f`` and check the bytes its shape x dtype declare against
    ``available`` (what the file or zip member holds after the header) and the cap."""
    import numpy as np
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        shape, _, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0) else fmt.read_array_header_2_0(f))
    except Exception as e:
        raise error(f"{where}: not a readable .npy header ({type(e).__name__}: {e})") from None
    if dtype.hasobject:
        raise error(f"{where}: holds Python objects (a pickled array), which are not loaded; expected a numeric "
                    "array (allow_pickle is off)")
    count = 1
    for s in shape:
        count *= int(s)
    nbytes = count * dtype.itemsize
    cap = max_array_bytes()
    if nbytes > cap:
        raise error(f"{where}: declares a {shape} {dtype} array of {nbytes} bytes, over the {cap}-byte limit "
                    "(set CONVRNN_MAX_ARRAY_BYTES to allow more)")
    left = available - f.tell()
    if left < nbytes:
        raise error(f"{where}: declares a {shape} {dtype} array of {nbytes} bytes but holds {max(left, 0)} "
                    "(truncated or forged header)")


def check_npy_file(path, error=ValueError) -> None:
    """Refuse a .npy file whose header declares more data than the file holds or than the cap,
    before anything is allocated (``error``: the exception class to raise)."""
    path = Path(path)
    with open(path, "rb") as f:
        _npy_header(f, str(path), os.fstat(f.fileno()).st_size, error)


def check_npz_file(path, error=ValueError) -> None:
    """Refuse a .npz whose members declare more than they hold, inflate beyond deflate's ratio, or
    exceed the cap, before anything is allocated."""
    import zipfile
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise error(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
    with zf:
        for info in zf.infolist():
            where = f"{path}[{info.filename}]"
            if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
                raise error(f"{where}: stored member claims {info.file_size} bytes in {info.compress_size}")
            if info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1) + 4096:
                raise error(f"{where}: {info.compress_size} compressed bytes claim to inflate to {info.file_size} "
                            f"(over {MAX_DEFLATE_RATIO}:1; a zip bomb or a corrupt archive)")
            if not info.filename.endswith(".npy"):
                continue
            try:
                with zf.open(info) as f:
                    _npy_header(f, where, info.file_size, error)
            except error:
                raise
            except Exception as e:
                raise error(f"{where}: unreadable member ({type(e).__name__}: {e})") from None
