"""The model's configuration: one validated object, loaded from and saved to TOML.

Every field is checked in :meth:`ModelConfig.validate`, which runs on construction, so an invalid
value raises :class:`ConfigError` naming the field and what is allowed before any work starts.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from ghostnet.errors import GhostnetError

TRANSFERS = ("logistic", "tanh", "softplus", "relu")
METHODS = ("euler", "expeuler")
SETTLE_RULES = ("fixed", "tol")
MODES = ("dynamics", "equilibrium")
MECHANISMS = ("copy", "learned", "replicate")
FEEDBACKS = ("symmetric", "random", "plastic")
OUTPUTS = ("nudge", "clamp")
COSTS = ("mse", "cross_entropy")
DTYPES = ("float64", "float32")
DEVICES = ("auto", "cpu", "cuda")
LAYER_TYPES = ("conv", "dense")

# Largest slope of each transfer function: the stiffest the nudging term can make the output layer.
MAX_SLOPE = {"logistic": 0.25, "tanh": 1.0, "softplus": 1.0, "relu": 1.0}
SOFTMAX_MAX_SLOPE = 0.5
"""Largest eigenvalue of softmax's Jacobian ``diag(p) - p p^T`` (the variance of a unit vector's
entries under p, at most 1/2 by Popoviciu's inequality): the cross-entropy output's stiffness."""


class ConfigError(GhostnetError, ValueError):
    """An invalid configuration value; the message names the field and what is allowed (and the
    file, when ``path`` is given)."""

    def __init__(self, field_name: str, message: str, path: str | Path | None = None):
        self.field = field_name
        self.path = path
        where = f"{path}: " if path is not None else ""
        super().__init__(f"{where}config field '{field_name}': {message}")


@dataclass
class ModelConfig:
    """Network, dynamics and learning-rule settings (docs/model.md §1, §2, §4-§8).

    Times are in units of the pyramidal time constant's unit (``tau = 1`` by default), so ``dt`` is
    a fraction of it.
    """

    sizes: list[int] = field(default_factory=lambda: [20, 30, 25, 15, 5])
    """Layer sizes n_0 (input) .. n_L (output)."""
    transfer: str = "logistic"
    """phi: logistic, tanh, softplus or relu."""
    tau: float = 1.0
    """Pyramidal time constant."""
    tau_g: float = 1.0
    """Ghost time constant."""
    beta: float = 0.01
    """Nudging strength of the target in the nudged phase (>= 0)."""
    output: str = "nudge"
    """'nudge': beta (y - r_L) drives the output; 'clamp': u_L held at phi^-1(y) (beta -> inf)."""
    cost: str = "mse"
    """The cost the update approximates: 'mse' (0.5 |y - phi(a_L)|^2) or 'cross_entropy'
    (softmax output: the nudge is beta (y - softmax(u_L)), the output's rate for the feedback is
    u_L itself; docs/model.md, "Cross-entropy output"). Targets are then probability vectors."""
    dt: float = 0.1
    """Integration step."""
    method: str = "expeuler"
    """'euler' (forward Euler) or 'expeuler' (exponential Euler: exact leak)."""
    settle: str = "fixed"
    """'fixed': integrate `steps` steps per phase; 'tol': until max |du/dt| < tol, at most max_steps."""
    steps: int = 50
    tol: float = 1e-6
    max_steps: int = 2000
    mode: str = "dynamics"
    """'dynamics' integrates the ODEs; 'equilibrium' computes the fixed points directly (§8)."""
    engine: str = "numba"
    """Which engine runs the phases: a module of :mod:`ghostnet.engines` ('numba': numpy arrays,
    Numba kernels, CPU, dense networks; 'torch': torch tensors on the CPU or a CUDA device, dense
    and convolutional networks)."""
    device: str = "auto"
    """Engine 'torch': where the tensors live: 'cpu', 'cuda', or 'auto' (CUDA when torch sees a
    device, else the CPU)."""
    input: list[int] = field(default_factory=list)
    """Shape of one input sample for a ``layers`` network: [C, H, W] for images, [n] for vectors
    (empty: a ``sizes`` network)."""
    layers: list[dict] = field(default_factory=list)
    """The weight layers of a general network, input side first (docs/torch_engine.md):
    ``{type = "conv", channels, kernel, padding = 0, pool = 1}`` (2-D convolution, stride 1,
    then ``pool`` x ``pool`` average pooling) or ``{type = "dense", units}``. Empty: the dense
    network of ``sizes``. When set, ``sizes`` is derived: the flattened sizes of the input and of
    every layer's output. Needs engine = 'torch'; the last layer must be dense."""
    eq_tol: float = 1e-12
    """Equilibrium mode: stop the fixed-point iteration when the largest change is below this."""
    eq_max_iter: int = 500
    """Equilibrium mode: at most this many down passes of the fixed-point iteration. 1 gives
    the first-order solution: one pass of the error from the top down at the free phase's
    bottom-up inputs, e_l = phi(a_l + B_l e_{l+1}) - phi(a_l), the floating-point work of
    backprop's backward pass (784-500-500-10 at beta = 0.01: the update 0.067 instead of 0.080
    degrees from backprop, since the free a_l are where backprop takes its derivatives; the
    phase reports converged = False)."""
    mechanism: str = "copy"
    """Ghost cancellation mechanism (§5): copy, learned or replicate."""
    feedback: str = "symmetric"
    """Feedback weights B (§6): symmetric, random or plastic."""
    baseline: bool = True
    """Learn from e_l - e_l(free) (§4); changes nothing for 'copy'."""
    eta_g: float | list = 0.2
    """Ghost input learning rate (mechanism 'learned'; 0.2 pre-trains a 20-30-25-15-5 logistic
    network to residual < 0.05 in ~50k samples, 0.5 diverges). A list gives one rate per ghost
    population (hidden layer), bottom first: each layer's LMS bound differs (docs/model.md §5)."""
    eta_h: float | list = 0.2
    """Ghost inhibition learning rate (mechanism 'learned'); a list as for ``eta_g``."""
    gate_ghosts: bool = True
    """Mechanism 'learned': ghost plasticity off while a target is present."""
    weight_decay: float = 0.0
    """Decay of W (and of B with plastic feedback) per SGD step: W -= lr * weight_decay * W. With
    the same decay on both, Kolen-Pollack drives B_l to W_{l+1}^T (docs/model.md §6)."""
    init_gain: float = 1.0
    """Scale of the Glorot-uniform initial weights."""
    seed: int = 0
    dtype: str = "float64"

    def __post_init__(self) -> None:
        self.validate()

    # ---- validation -------------------------------------------------------------------------
    def validate(self) -> "ModelConfig":
        """Check every field; raise :class:`ConfigError` on the first invalid one."""
        _choice("device", self.device, DEVICES)
        if self.layers or self.input:
            self.input, self.layers, self.sizes = _check_layers(self.input, self.layers)
        sizes = self.sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise ConfigError("sizes", f"must be a list of positive integers, got {sizes!r}")
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ConfigError("sizes", f"needs at least an input and an output layer, got {sizes!r}")
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
                raise ConfigError("sizes", f"must be a list of integers >= 1, got {sizes!r}")
        self.sizes = [int(s) for s in sizes]

        _choice("transfer", self.transfer, TRANSFERS)
        _choice("output", self.output, OUTPUTS)
        _choice("cost", self.cost, COSTS)
        if self.cost == "cross_entropy" and self.output == "clamp":
            raise ConfigError("cost", "'cross_entropy' nudges the output in rate space and has no "
                                      "clamped form (a softmax cannot be inverted to one "
                                      "potential); use output = 'nudge' or cost = 'mse'")
        _choice("method", self.method, METHODS)
        _choice("settle", self.settle, SETTLE_RULES)
        _choice("mode", self.mode, MODES)
        if not isinstance(self.engine, str) or not self.engine.isidentifier():
            raise ConfigError("engine", f"must name an engine module, e.g. 'numba', got {self.engine!r}")
        if self.layers and self.engine == "numba":
            raise ConfigError("engine", "the Numba engine runs dense `sizes` networks only; a "
                                        "`layers` network needs engine = 'torch'")
        _choice("mechanism", self.mechanism, MECHANISMS)
        _choice("feedback", self.feedback, FEEDBACKS)
        _choice("dtype", self.dtype, DTYPES)
        for name in ("tau", "tau_g", "dt", "tol", "eq_tol", "init_gain"):
            _positive(name, getattr(self, name))
        for name in ("eta_g", "eta_h"):
            v = getattr(self, name)
            if isinstance(v, (list, tuple)):
                if len(v) != self.n_layers - 1:
                    raise ConfigError(name, f"needs one rate per hidden layer "
                                            f"({self.n_layers - 1}), got {len(v)}")
                for r in v:
                    _positive(name, r)
            else:
                _positive(name, v)
        _number("beta", self.beta)
        _number("weight_decay", self.weight_decay)
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        if self.beta < 0:
            raise ConfigError("beta", f"must be >= 0 (0 means no target), got {self.beta!r}")
        for name in ("steps", "max_steps", "eq_max_iter"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")
        for name in ("baseline", "gate_ghosts"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.mode == "dynamics":
            bound = self.stability_bound()
            if self.dt >= bound:
                raise ConfigError(
                    "dt",
                    f"dt = {self.dt} is too large for {self.method} integration: it must be below "
                    f"{bound:.4g} (stability bound for tau = {self.tau}, tau_g = {self.tau_g}, "
                    f"beta = {self.beta}, transfer = {self.transfer})",
                )
        return self

    def stability_bound(self) -> float:
        """Largest stable step of the explicit integrator for the leak and nudging terms.

        Forward Euler on ``tau du/dt = -u - beta phi(u)`` is stable for
        ``dt < 2 tau / (1 + beta max phi')``, and on the ghosts for ``dt < 2 tau_g``. Exponential
        Euler integrates the leak exactly; the nudging term, held constant over a step, stays stable
        while ``beta max phi' < coth(dt / (2 tau))``, i.e. for any dt when ``beta max phi' < 1``.
        With ``cost = 'cross_entropy'`` the nudge is ``-beta softmax(u)``, whose Jacobian's
        eigenvalues lie in [0, 1/2] (:data:`SOFTMAX_MAX_SLOPE`), in place of ``max phi'``.
        This is a necessary bound: the recurrent coupling can still destabilise a run, which the
        integrator detects at run time (:class:`ghostnet.model.state.BlowUpError`).
        """
        if self.output == "clamp":
            k = 0.0
        elif self.cost == "cross_entropy":
            k = self.beta * SOFTMAX_MAX_SLOPE
        else:
            k = self.beta * MAX_SLOPE[self.transfer]
        if self.method == "euler":
            return min(2.0 * self.tau / (1.0 + k), 2.0 * self.tau_g)
        if k < 1.0:
            return math.inf
        # coth(h/2) > k  <=>  h < 2 artanh(1/k) = ln((k+1)/(k-1))
        return self.tau * math.log((k + 1.0) / (k - 1.0)) if k > 1.0 else math.inf

    # ---- derived quantities -----------------------------------------------------------------
    def ghost_rates(self, i: int) -> tuple[float, float]:
        """``(eta_g, eta_h)`` of the ghosts of hidden layer i+1."""
        g, h = self.eta_g, self.eta_h
        return (float(g[i]) if isinstance(g, (list, tuple)) else float(g),
                float(h[i]) if isinstance(h, (list, tuple)) else float(h))

    @property
    def n_layers(self) -> int:
        """L: the number of weight layers (hidden layers + output)."""
        return len(self.sizes) - 1

    def rate_transfer(self, i: int) -> str:
        """Transfer function giving the rate of pyramidal layer ``i + 1`` (Python index ``i``):
        ``transfer``, except the cross-entropy output, whose rate for the feedback pathway is its
        potential ('identity'; its prediction is softmax(u_L), docs/model.md)."""
        if self.cost == "cross_entropy" and i == len(self.sizes) - 2:
            return "identity"
        return self.transfer

    def ghost_transfer(self, i: int) -> str:
        """Transfer function of ghost population ``i`` (partners of layer ``i + 2``): the rate
        transfer of the layer it predicts, so 'identity' for the last one with cross-entropy."""
        return self.rate_transfer(i + 1)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shapes of the input and of every layer's output: ``(n,)`` for a dense
        layer, ``(C, H, W)`` for a convolutional one (a ``sizes`` network: all ``(n,)``)."""
        if not self.layers:
            return [(n,) for n in self.sizes]
        return _layer_shapes(self.input, self.layers)

    def is_conv(self, i: int) -> bool:
        """Whether weight layer ``i + 1`` (Python index ``i``) is convolutional."""
        return bool(self.layers) and self.layers[i]["type"] == "conv"

    def replace(self, **changes: Any) -> "ModelConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # ---- TOML ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        if not isinstance(data, dict):
            raise ConfigError("model", f"must be a table ([model] section), got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown field; allowed fields are {sorted(known)}")
        return cls(**data)

    def to_toml(self) -> str:
        return tomli_w.dumps({"model": self.to_dict()})

    @classmethod
    def from_toml(cls, text: str) -> "ModelConfig":
        data = parse_toml(text)
        return cls.from_dict(data.get("model", data))

    def save(self, path: str | Path) -> None:
        from ghostnet.io import atomic_write_text

        atomic_write_text(path, self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> "ModelConfig":
        return cls.from_toml(read_config_text(path))


def read_config_text(path: str | Path) -> str:
    """The text of a TOML config file; a missing file, a directory or an unreadable or non-UTF-8
    file raises :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("<file>", "no such config file", path)
    if path.is_dir():
        raise ConfigError("<file>", "is a directory, not a TOML config file", path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("<file>", f"cannot be read ({exc})", path) from None


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text to a dict; invalid TOML raises :class:`ConfigError`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<toml>", f"not valid TOML: {exc}") from None


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(name, f"unknown value {value!r}; allowed: {', '.join(allowed)}")


def _number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")


def _positive(name: str, value: Any) -> None:
    _number(name, value)
    if value <= 0:
        raise ConfigError(name, f"must be > 0, got {value!r}")


_LAYER_KEYS = {"conv": {"type", "channels", "kernel", "padding", "pool"},
               "dense": {"type", "units"}}


def _layer_shapes(input_shape, layers) -> list[tuple[int, ...]]:
    shapes = [tuple(input_shape)]
    for spec in layers:
        if spec["type"] == "dense":
            shapes.append((spec["units"],))
        else:
            _c, h, w = shapes[-1]
            k, pad, pool = spec["kernel"], spec["padding"], spec["pool"]
            shapes.append((spec["channels"], (h + 2 * pad - k + 1) // pool,
                           (w + 2 * pad - k + 1) // pool))
    return shapes


def _check_layers(input_shape, layers):
    """Validate ``input`` and ``layers`` (shapes must chain); returns them normalised (every conv
    layer with its padding and pool) and the derived flattened ``sizes``."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise ConfigError("input", f"must be a list of positive integers, got {input_shape!r}")
    input_shape = list(input_shape)
    if len(input_shape) not in (1, 3) or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in input_shape):
        raise ConfigError("input", "must be [C, H, W] (images) or [n] (vectors) of integers >= 1, "
                                   f"got {input_shape!r}")
    input_shape = [int(s) for s in input_shape]
    if isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__iter__") or not list(layers):
        raise ConfigError("layers", f"must be a non-empty list of layer tables, got {layers!r}")
    out = []
    shape = tuple(input_shape)
    for k, spec in enumerate(list(layers), start=1):
        where = f"layers[{k}]"
        if not isinstance(spec, dict) or spec.get("type") not in LAYER_TYPES:
            raise ConfigError("layers", f"{where}: must be a table with type = 'conv' or 'dense', "
                                        f"got {spec!r}")
        kind = spec["type"]
        extra = sorted(set(spec) - _LAYER_KEYS[kind])
        if extra:
            raise ConfigError("layers", f"{where} ({kind}): unknown key {extra[0]!r}; allowed: "
                                        f"{', '.join(sorted(_LAYER_KEYS[kind]))}")
        spec = dict(spec)
        if kind == "conv":
            spec.setdefault("padding", 0)
            spec.setdefault("pool", 1)
            for key, low in (("channels", 1), ("kernel", 1), ("padding", 0), ("pool", 1)):
                v = spec.get(key)
                if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                    raise ConfigError("layers", f"{where} (conv): {key} must be an integer >= "
                                                f"{low}, got {v!r}")
                spec[key] = int(v)
            if len(shape) != 3:
                raise ConfigError("layers", f"{where} (conv): needs an image input [C, H, W]; it "
                                            f"follows a dense layer or vector input of shape "
                                            f"{list(shape)}")
            h, w = (s + 2 * spec["padding"] - spec["kernel"] + 1 for s in shape[1:])
            if h < 1 or w < 1:
                raise ConfigError("layers", f"{where} (conv): kernel {spec['kernel']} with padding "
                                            f"{spec['padding']} does not fit its input "
                                            f"{list(shape)}")
            if h % spec["pool"] or w % spec["pool"]:
                raise ConfigError("layers", f"{where} (conv): pool {spec['pool']} must divide the "
                                            f"convolution's output {h} x {w}")
            shape = (spec["channels"], h // spec["pool"], w // spec["pool"])
        else:
            v = spec.get("units")
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ConfigError("layers", f"{where} (dense): units must be an integer >= 1, "
                                            f"got {v!r}")
            spec["units"] = int(v)
            shape = (spec["units"],)
        out.append(spec)
    if out[-1]["type"] != "dense":
        raise ConfigError("layers", f"layers[{len(out)}]: the output layer must be dense (the "
                                    "target is a vector)")
    sizes = [math.prod(s) for s in _layer_shapes(input_shape, out)]
    return input_shape, out, sizes


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, f"must be an integer >= 1, got {value!r}")
