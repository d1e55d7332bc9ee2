"""Atomic file writes (a temporary file in the same folder, then a rename, so nothing is
half-written) and strict JSON (non-finite numbers as null), used wherever ghostnet writes JSON."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[object], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file a normal file's mode
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with the same keys) as a CSV with a header, atomically."""
    import csv
    import io

    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


# ---- strict JSON ---------------------------------------------------------------------------------
def _finite(o):
    """``o`` with every non-finite float (Python or numpy) replaced by None, recursively."""
    if isinstance(o, float):  # numpy floating scalars are floats too
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _default(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return _finite(o.item())
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def dumps(obj, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259): non-finite numbers become null, numpy scalars and arrays plain
    numbers and lists; ``allow_nan=False`` guards the rest, so no bare NaN or Infinity is ever
    written."""
    return json.dumps(_finite(obj), default=_default, allow_nan=False, indent=indent)


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def loads(text: str):
    """Parse JSON strictly: NaN, Infinity and -Infinity are refused (``ValueError``)."""
    return json.loads(text, parse_constant=_reject_constant)


def write_json(path: str | Path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (:func:`dumps`) atomically."""
    return atomic_write_text(path, dumps(obj, indent=indent) + "\n")
