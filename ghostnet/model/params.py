"""The network's parameters W, b, B, G, c, H (docs/model.md §1), their initialisation and .npz storage.

Indexing: Python index ``i`` is layer ``l = i + 1``.

- ``W[i]`` (n_{i+1} x n_i), ``b[i]`` (n_{i+1}) for i = 0..L-1: forward weights of layer i+1;
- ``B[i]`` (n_{i+1} x n_{i+2}) for i = 0..L-2: top-down weights into hidden layer i+1;
- ``G[i]`` (n_{i+2} x n_{i+1}), ``c[i]`` (n_{i+2}): ghost input weights and bias of hidden layer i+1;
- ``H[i]`` (n_{i+1} x n_{i+2}): ghost inhibition onto hidden layer i+1.

A convolutional layer i+1 (``config.layers``) has a kernel ``W[i]`` (C_out x C_in x k x k) and one
bias per output channel ``b[i]`` (C_out); the feedback into the layer below it, ``B[i-1]``, and
the inhibition ``H[i-1]`` are then kernels of ``W[i]``'s shape whose *transpose* map (a transposed
convolution) carries layer i+1's activity down; ``G[i-1]``, ``c[i-1]`` are shaped like ``W[i]``,
``b[i]`` (docs/torch_engine.md). Symmetric feedback ties ``B[i-1]`` to ``W[i]`` itself.

Initialisation (documented in README): forward weights Glorot-uniform,
``W ~ U(-s, s)``, ``s = init_gain * sqrt(6 / (n_in + n_out))``, biases zero. Feedback: ``B = W^T``
(symmetric) or an independent Glorot-uniform draw (random, and the start of plastic). Ghosts: a copy of the
connectivity (``G = W_{l+1}``, ``c = b_{l+1}``, ``H = B``) for mechanism 'copy' and 'replicate'
(H is then B, and G is unused by replicate), independent Glorot-uniform draws and zero ``c`` for
'learned'. Every draw comes from one ``numpy.random.Generator`` seeded by ``config.seed``.
"""
from __future__ import annotations

import io as _io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ghostnet.errors import CheckpointError
from ghostnet.model.config import ConfigError, ModelConfig
from ghostnet.io import atomic_write, dumps

NAMES = ("W", "b", "B", "G", "c", "H")


@dataclass
class Params:
    """Lists of per-layer arrays, all of the configuration's dtype; C-contiguous, except that with
    symmetric feedback ``B_l`` is ``W_{l+1}.T``, a transposed view of ``W_{l+1}`` (:meth:`tie`)."""

    W: list[np.ndarray]
    b: list[np.ndarray]
    B: list[np.ndarray]
    G: list[np.ndarray]
    c: list[np.ndarray]
    H: list[np.ndarray]

    @classmethod
    def init(cls, config: ModelConfig, rng: np.random.Generator | None = None) -> "Params":
        """Draw initial parameters as documented in the module docstring."""
        rng = np.random.default_rng(config.seed) if rng is None else rng
        dt = np.dtype(config.dtype)
        n = config.sizes
        L = len(n) - 1
        kernels = [_kernel_shape(config, i) for i in range(L)]

        def glorot(rows: int, cols: int) -> np.ndarray:
            s = config.init_gain * np.sqrt(6.0 / (rows + cols))
            return rng.uniform(-s, s, size=(rows, cols)).astype(dt)

        def weight(i: int) -> np.ndarray:  # layer i+1's forward weights: a matrix or a kernel
            shape = kernels[i]
            if len(shape) == 2:
                return glorot(*shape)
            field = shape[2] * shape[3]  # conv: Glorot on fan-in C_in k^2 and fan-out C_out k^2
            s = config.init_gain * np.sqrt(6.0 / ((shape[0] + shape[1]) * field))
            return rng.uniform(-s, s, size=shape).astype(dt)

        def feedback(i: int) -> np.ndarray:  # into layer i+1: W_{i+2}^T's shape, or its kernel
            return weight(i + 1) if config.is_conv(i + 1) else glorot(n[i + 1], n[i + 2])

        def mirror(w: np.ndarray, i: int) -> np.ndarray:  # B's form of layer i+2's weights
            return w if config.is_conv(i + 1) else w.T

        def bias(i: int) -> np.ndarray:
            return np.zeros(kernels[i][0], dtype=dt)

        W = [weight(i) for i in range(L)]
        b = [bias(i) for i in range(L)]
        if config.feedback in ("random", "plastic"):  # plastic: learns its way to W^T (§6)
            B = [feedback(i) for i in range(L - 1)]
        else:
            B = [mirror(W[i + 1], i) for i in range(L - 1)]  # a view: see tie
        if config.mechanism == "learned":
            G = [weight(i + 1) for i in range(L - 1)]
            c = [bias(i + 1) for i in range(L - 1)]
            H = [feedback(i) for i in range(L - 1)]
        else:
            G = [W[i + 1].copy() for i in range(L - 1)]
            c = [b[i + 1].copy() for i in range(L - 1)]
            H = [B[i].copy() for i in range(L - 1)]
        return cls(W, b, B, G, c, H).tie(config)

    def copy(self) -> "Params":
        """Independent copies of the arrays; arrays shared within ``self`` (:meth:`tie`) stay
        shared within the copy."""
        memo: dict[int, np.ndarray] = {}

        def dup(a):
            if id(a) not in memo:  # W comes first: a transposed view of it stays one
                src = next((w for w in self.W if _is_transpose(a, w) and id(w) in memo), None)
                memo[id(a)] = a.copy() if src is None else memo[id(src)].T
            return memo[id(a)]

        return Params(*[[dup(a) for a in getattr(self, k)] for k in NAMES])

    def tie(self, config: ModelConfig) -> "Params":
        """Make the parameters that the configuration defines as copies of others the same arrays
        (docs/model.md §5, §6): symmetric feedback makes ``B_l`` the transposed view ``W_{l+1}.T``;
        mechanism copy ``G_l`` is ``W_{l+1}``, ``c_l`` is ``b_{l+1}`` and ``H_l`` is ``B_l``;
        replicate ``H_l`` is ``B_l``. Then an update moves both at once and :meth:`sync` has
        nothing to copy (784-500-500-10: a transposed 1 MB copy and two plain ones a training
        step; a product with the view costs ~15 us more than with a contiguous B). A tie is made
        only where the values already agree (a file written by :meth:`save` after :meth:`sync`),
        and undone, by copying, where the configuration lets the two differ (random or plastic
        feedback, mechanism learned), so that learning one never moves the other.
        Returns ``self``."""
        L = len(self.W)
        for i in range(L - 1):
            W, B = self.W[i + 1], self.B[i]
            if config.is_conv(i + 1):  # a kernel's feedback is the transpose map of a kernel
                if config.feedback == "symmetric":
                    if B is not W and _same_values(B, W):
                        self.B[i] = W
                elif np.may_share_memory(B, W):
                    self.B[i] = B.copy()
            elif config.feedback == "symmetric":
                if not _is_transpose(B, W) and _same_values(B, W.T):
                    self.B[i] = W.T
            elif np.may_share_memory(B, W):
                self.B[i] = np.array(B, order="C")
        pairs = []  # (list, index, source) that the configuration ties
        if config.mechanism == "copy":
            pairs += [(self.G, i, self.W[i + 1]) for i in range(L - 1)]
            pairs += [(self.c, i, self.b[i + 1]) for i in range(L - 1)]
        if config.mechanism in ("copy", "replicate"):
            pairs += [(self.H, i, self.B[i]) for i in range(L - 1)]
        tied = {(id(lst), i) for lst, i, _ in pairs}
        for lst, i, src in pairs:
            if lst[i] is not src and _same_values(lst[i], src):
                lst[i] = src
        own = [a for k in ("W", "b", "B") for a in getattr(self, k)]
        for lst in (self.G, self.c, self.H):
            for i, a in enumerate(lst):
                if (id(lst), i) not in tied and any(np.may_share_memory(a, o) for o in own):
                    lst[i] = a.copy()
        return self

    def sync(self, config: ModelConfig) -> None:
        """Keep the derived weights in step after an update (docs/model.md §5 copy, §6 symmetric).

        Symmetric feedback: ``B_l <- W_{l+1}^T``. Mechanism copy: ``G_l <- W_{l+1}``,
        ``c_l <- b_{l+1}``, ``H_l <- B_l``. Replicate uses ``H_l = B_l`` (its ghosts copy activity).
        """
        L = len(self.W)
        for i in range(L - 1):  # tied arrays (see tie) need no copy
            if config.feedback == "symmetric" and config.is_conv(i + 1):
                if self.B[i] is not self.W[i + 1]:
                    self.B[i][...] = self.W[i + 1]
            elif config.feedback == "symmetric" and not _is_transpose(self.B[i], self.W[i + 1]):
                self.B[i][...] = self.W[i + 1].T
            if config.mechanism in ("copy", "replicate") and self.H[i] is not self.B[i]:
                self.H[i][...] = self.B[i]
            if config.mechanism == "copy":
                if self.G[i] is not self.W[i + 1]:
                    self.G[i][...] = self.W[i + 1]
                if self.c[i] is not self.b[i + 1]:
                    self.c[i][...] = self.b[i + 1]

    def check(self, config: ModelConfig) -> None:
        """Raise ``ValueError`` unless the shapes and dtypes match ``config``."""
        n = config.sizes
        L = len(n) - 1
        k = [_kernel_shape(config, i) for i in range(L)]
        fb = [k[i + 1] if config.is_conv(i + 1) else k[i + 1][::-1] for i in range(L - 1)]
        want = {
            "W": k,
            "b": [(k[i][0],) for i in range(L)],
            "B": fb,
            "G": k[1:],
            "c": [(k[i + 1][0],) for i in range(L - 1)],
            "H": fb,
        }
        for k, shapes in want.items():
            got = [a.shape for a in getattr(self, k)]
            if got != shapes:
                raise ValueError(f"parameter {k}: shapes {got} do not match sizes {n} (want {shapes})")
            for a in getattr(self, k):
                if a.dtype != np.dtype(config.dtype):
                    raise ValueError(f"parameter {k}: dtype {a.dtype}, config says {config.dtype}")

    # ---- storage ----------------------------------------------------------------------------
    def save(self, path: str | Path, config: ModelConfig, extra: dict | None = None,
             arrays: dict[str, np.ndarray] | None = None) -> Path:
        """Write an .npz holding every array and the configuration (as TOML), atomically;
        ``arrays``: more named arrays stored beside them (a trainer's optimizer state)."""
        more = dict(arrays or {})
        arrays = {f"{k}_{i}": a for k in NAMES for i, a in enumerate(getattr(self, k))}
        clash = sorted(set(more) & (set(arrays) | {"config_toml", "extra_json"}))
        if clash:
            raise ValueError(f"extra arrays would overwrite the parameters' {clash}")
        arrays.update(more)
        arrays["config_toml"] = np.array(config.to_toml())
        arrays["extra_json"] = np.array(dumps(extra or {}))  # strict JSON

        def write(fh) -> None:
            buf = _io.BytesIO()
            np.savez(buf, **arrays)
            fh.write(buf.getvalue())

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path, extra: bool = False):
        """Read parameters and configuration written by :meth:`save` (and, with ``extra``, the
        dict saved with them), checked: every array of the configuration's shape and dtype and
        finite, and every tie the configuration defines intact (:meth:`check_values`). A
        missing, truncated, corrupt or inconsistent file raises :class:`CheckpointError` naming
        it."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"no parameter file at {path}")
        if path.is_dir():
            raise CheckpointError(f"{path} is a directory, not a parameter file")
        try:
            with np.load(path, allow_pickle=False) as z:
                config = ModelConfig.from_toml(str(z["config_toml"]))
                L = config.n_layers
                counts = {"W": L, "b": L, "B": L - 1, "G": L - 1, "c": L - 1, "H": L - 1}
                lists = {k: [z[f"{k}_{i}"].copy() for i in range(m)] for k, m in counts.items()}
                stored = json.loads(str(z["extra_json"])) if "extra_json" in z.files else {}
        except ConfigError as exc:
            raise CheckpointError(f"{path}: its stored configuration is invalid ({exc})") from None
        except Exception as exc:  # zipfile, zlib, CRC, JSON and format errors of a damaged file
            raise CheckpointError(f"{path} is not a ghostnet parameter file, or it is truncated "
                                  f"or corrupt ({type(exc).__name__}: {exc})") from None
        params = cls(**lists)
        try:
            params.check(config)
            params.check_values(config)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        return (params, config, stored) if extra else (params, config)

    def check_values(self, config: ModelConfig) -> None:
        """Raise ``ValueError`` if an array holds NaN or infinity, or a tie that the
        configuration defines is broken: symmetric feedback needs ``B_l = W_{l+1}^T`` (``W_{l+1}``
        for a convolutional layer l+1), mechanism
        copy ``G_l = W_{l+1}``, ``c_l = b_{l+1}``, ``H_l = B_l``, replicate ``H_l = B_l``
        (exactly: :meth:`save` writes them after :meth:`sync`)."""
        for k in NAMES:
            for i, a in enumerate(getattr(self, k)):
                if not np.isfinite(a).all():
                    raise ValueError(f"parameter {k}_{i} holds non-finite values (NaN or infinity)")
        for i in range(len(self.W) - 1):
            pairs = []
            if config.feedback == "symmetric" and config.is_conv(i + 1):  # the kernel itself
                pairs.append((f"B_{i}", self.B[i], f"W_{i + 1}", self.W[i + 1],
                              "feedback = 'symmetric'"))
            elif config.feedback == "symmetric":
                pairs.append((f"B_{i}", self.B[i], f"W_{i + 1}^T", self.W[i + 1].T,
                              "feedback = 'symmetric'"))
            if config.mechanism == "copy":
                pairs += [(f"G_{i}", self.G[i], f"W_{i + 1}", self.W[i + 1], "mechanism = 'copy'"),
                          (f"c_{i}", self.c[i], f"b_{i + 1}", self.b[i + 1], "mechanism = 'copy'")]
            if config.mechanism in ("copy", "replicate"):
                pairs.append((f"H_{i}", self.H[i], f"B_{i}", self.B[i],
                              f"mechanism = '{config.mechanism}'"))
            for name, a, src_name, src, why in pairs:
                if not np.array_equal(a, src):
                    diff = float(np.max(np.abs(a - src)))
                    raise ValueError(f"{name} is not {src_name} (largest difference {diff:.3g}) "
                                     f"although {why} ties them")


def _kernel_shape(config: ModelConfig, i: int) -> tuple[int, ...]:
    """Shape of layer i+1's forward weights: ``(n_{i+1}, n_i)`` for a dense layer (its input
    flattened), ``(C_out, C_in, k, k)`` for a convolution."""
    if config.is_conv(i):
        spec = config.layers[i]
        return (spec["channels"], config.shapes[i][0], spec["kernel"], spec["kernel"])
    return (config.sizes[i + 1], config.sizes[i])


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, dtype and values: where :meth:`Params.tie` may make ``a`` the array ``b``."""
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def _is_transpose(a: np.ndarray, w: np.ndarray) -> bool:
    """Whether ``a`` is exactly the view ``w.T`` (same memory, reversed shape and strides)."""
    return (a.shape == w.shape[::-1] and a.strides == w.strides[::-1]
            and a.__array_interface__["data"][0] == w.__array_interface__["data"][0])
