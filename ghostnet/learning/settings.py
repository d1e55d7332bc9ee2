"""The ``[train]`` section of a training configuration and the whole configuration
(``[model]`` + ``[train]``), validated field by field, stored as TOML."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from ghostnet.model.config import ConfigError, ModelConfig, parse_toml, read_config_text

LEARNERS = ("ghost", "backprop", "fa")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")
STANDARDIZE = ("none", "pixel", "global")


@dataclass
class TrainSettings:
    """The ``[train]`` section: learner, optimiser, data and seeds."""

    learner: str = "ghost"
    dataset: str = "fashion-mnist"
    data_source: str = ""
    """A directory of IDX files or an .npz; empty: the default sources (ghostnet.learning.data.load).
    A relative path in a config file is taken relative to that file (:meth:`TrainConfig.load`)."""
    epochs: int = 20
    batch_size: int = 100
    lr: float | list[float] = 0.5
    """One learning rate, or one per layer."""
    optimizer: str = "sgd"
    """'sgd' (with ``momentum``, optionally Nesterov's) or 'adam'; per synapse (ghostnet.learning.optim)."""
    momentum: float = 0.0
    nesterov: bool = False
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    """Decoupled weight decay of W (and of a plastic B) per step: W *= 1 - lr_t weight_decay."""
    schedule: str = "constant"
    """Learning-rate schedule over the run's steps: 'constant', 'step' or 'cosine'."""
    warmup_epochs: float = 0.0
    """Linear warm-up from lr / (warm-up steps) to lr over this many epochs (0: none)."""
    step_epochs: int = 10
    """Schedule 'step': multiply the rate by ``step_gamma`` every this many epochs."""
    step_gamma: float = 0.1
    lr_min_ratio: float = 0.0
    """Schedule 'cosine': the final rate as a fraction of lr."""
    standardize: str = "none"
    """Inputs: 'none', 'pixel' (per-pixel mean and std) or 'global' (one mean and std), from the
    training split (after the validation split is taken out)."""
    augment_shift: int = 0
    """Training batches only: translate each image by a random (dy, dx) of at most this many pixels,
    the border filled with 0 (0: none; ``ghostnet.learning.augment``). Needs image inputs: a
    model ``input = [C, H, W]``, or a square number of inputs (one channel)."""
    augment_flip: bool = False
    """Training batches only: mirror each image left to right with probability 1/2."""
    eval_train: bool = True
    """Evaluate the whole training split after every epoch (train_acc, train_cost); false leaves
    those columns empty and saves a forward pass over the training set per epoch."""
    train_size: int = 0
    """Use the first N training samples (0: all)."""
    val_size: int = 0
    seed: int = 0
    probe_size: int = 100
    """Ghost learner: per-layer angle to backprop on this many fixed training samples each epoch."""
    pretrain: int = 0
    """Mechanism 'learned': samples of ghost pre-training on the training inputs before epoch 1."""
    pretrain_noise: float = 0.0
    """Exploration noise of that pre-training, first half (``ghostnet.network.mechanisms.pretrain``)."""
    pretrain_loop: str = "closed"
    """That pre-training's free phases: "closed" (the network's own) or "open" first (the top-down
    input kept off the pyramidal neurons until the ghosts cancel it, then closed;
    ``ghostnet.network.mechanisms.pretrain``)."""
    threads: int = 0
    """Threads of BLAS, Numba and torch during the run (0: every core, or the bound the environment
    sets with OMP_NUM_THREADS and the like; a sweep's workers use 1;
    ``ghostnet.learning.threads``). Results can differ in the last bits between thread counts
    (BLAS may sum in another order), never between runs at the same count."""

    def validate(self, model: ModelConfig) -> None:
        if not isinstance(self.learner, str) or self.learner not in LEARNERS:
            raise ConfigError("learner", f"unknown value {self.learner!r}; allowed: {', '.join(LEARNERS)}")
        if not isinstance(self.dataset, str):
            raise ConfigError("dataset", f"must be a dataset name, got {self.dataset!r}")
        from ghostnet.learning.data import NAMES

        if self.dataset not in NAMES:
            raise ConfigError("dataset", f"unknown value {self.dataset!r}; allowed: {', '.join(NAMES)}")
        if not isinstance(self.data_source, str):
            raise ConfigError("data_source", f"must be a path (a string), got {self.data_source!r}")
        if (self.learner == "ghost" and model.output == "nudge" and isinstance(model.beta, (int, float))
                and model.beta == 0):
            raise ConfigError("beta", "the ghost learner needs beta > 0: with beta = 0 the nudged "
                                      "phase has no target and nothing is learned")
        if self.learner == "fa" and model.feedback != "random":
            raise ConfigError("feedback", "learner 'fa' sends the error through the random B: set "
                                          "feedback = 'random'")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {v!r}")
        for name in ("train_size", "val_size", "seed", "probe_size", "pretrain", "threads",
                     "augment_shift"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(name, f"must be an integer >= 0, got {v!r}")
        v = self.pretrain_noise
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < float("inf")):
            raise ConfigError("pretrain_noise", f"must be a finite standard deviation >= 0, got {v!r}")
        if self.pretrain_loop not in ("closed", "open"):
            raise ConfigError("pretrain_loop", f"unknown value {self.pretrain_loop!r}; allowed: "
                                               "closed, open")
        if self.pretrain_loop == "open" and self.pretrain_noise:
            raise ConfigError("pretrain_noise", "exploration noise needs pretrain_loop = 'closed'")
        lrs = self.lr if isinstance(self.lr, list) else [self.lr]
        if isinstance(self.lr, list) and len(lrs) != model.n_layers:
            raise ConfigError("lr", f"needs one rate per layer ({model.n_layers}), got {len(lrs)}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf")
               for v in lrs):
            raise ConfigError("lr", f"learning rates must be finite and > 0, got {self.lr!r}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("standardize", STANDARDIZE)):
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"unknown value {getattr(self, name)!r}; allowed: "
                                        f"{', '.join(allowed)}")
        _in_range("momentum", self.momentum, 0.0, 1.0, high_open=True)
        for name in ("nesterov", "eval_train", "augment_flip"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, got {getattr(self, name)!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov", "needs optimizer = 'sgd' and momentum > 0")
        if self.optimizer != "sgd" and self.momentum != 0:
            raise ConfigError("momentum", f"is for optimizer 'sgd'; {self.optimizer!r} has its own "
                                          "moments (adam_betas)")
        betas = self.adam_betas
        if (not isinstance(betas, (list, tuple)) or len(betas) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1
                       for v in betas)):
            raise ConfigError("adam_betas", f"must be two numbers in [0, 1), got {betas!r}")
        _in_range("adam_eps", self.adam_eps, 0.0, float("inf"), low_open=True, high_open=True)
        _in_range("weight_decay", self.weight_decay, 0.0, float("inf"), high_open=True)
        if self.weight_decay and model.weight_decay:
            raise ConfigError("weight_decay", "set the decay in [train] or in [model] "
                                              "(Kolen-Pollack's), not both")
        _in_range("warmup_epochs", self.warmup_epochs, 0.0, self.epochs)
        if isinstance(self.step_epochs, bool) or not isinstance(self.step_epochs, int) \
                or self.step_epochs < 1:
            raise ConfigError("step_epochs", f"must be an integer >= 1, got {self.step_epochs!r}")
        _in_range("step_gamma", self.step_gamma, 0.0, 1.0, low_open=True)
        _in_range("lr_min_ratio", self.lr_min_ratio, 0.0, 1.0)
        self.check_augment(model, model.sizes[0])

    def check_augment(self, model: ModelConfig, n_inputs: int) -> tuple[int, int, int] | None:
        """The image shape the augmentation works on (None when it is off); ConfigError when it is
        on and the inputs are not images, or the shift is not smaller than the image."""
        if not (self.augment_shift or self.augment_flip):
            return None
        from ghostnet.learning.augment import image_shape

        field_ = "augment_shift" if self.augment_shift else "augment_flip"
        shape = image_shape(model.input, n_inputs)
        if shape is None or shape[0] * shape[1] * shape[2] != n_inputs:
            raise ConfigError(field_, f"needs image inputs: {n_inputs} inputs are not a square image; "
                                      "set [model] input = [C, H, W]")
        if self.augment_shift >= min(shape[1], shape[2]):
            raise ConfigError("augment_shift", f"must be smaller than the image ({shape[1]} x "
                                               f"{shape[2]}), got {self.augment_shift}")
        return shape

    def lrs(self, n_layers: int) -> list[float]:
        return list(self.lr) if isinstance(self.lr, list) else [float(self.lr)] * n_layers


def _in_range(name: str, v, low: float, high: float, low_open=False, high_open=False) -> None:
    """A finite number (bool refused) in [low, high], each end open if asked; else ConfigError."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and v == v
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(name, f"must be a number in {lo}{low:g}, {high:g}{hi}, got {v!r}")


LEARNED_GHOST_FIELDS = ("model.eta_g", "model.eta_h", "train.pretrain", "train.pretrain_noise",
                        "train.pretrain_loop")
"""The settings only learned ghosts read (their plasticity rates and their pre-training)."""


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)

    def validate(self) -> "TrainConfig":
        self.model.validate()
        self.train.validate(self.model)
        return self

    def to_toml(self) -> str:
        return tomli_w.dumps({"model": self.model.to_dict(), "train": dataclasses.asdict(self.train)})

    @classmethod
    def from_toml(cls, text: str) -> "TrainConfig":
        return cls.from_dict(parse_toml(text))

    @classmethod
    def from_dict(cls, data) -> "TrainConfig":
        """A validated configuration from ``{"model": {...}, "train": {...}}``; anything else
        (an unknown section or field, a section that is not a table) raises :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError("<toml>", f"must be a table with [model] and [train], got {data!r}")
        unknown = sorted(set(data) - {"model", "train"})
        if unknown:
            raise ConfigError(unknown[0], "unknown section; allowed: [model], [train]")
        for section in ("model", "train"):
            if not isinstance(data.get(section, {}), dict):
                raise ConfigError(section, f"must be a table ([{section}] section), got "
                                           f"{data[section]!r}")
        model = ModelConfig.from_dict(data.get("model", {}))
        known = {f.name for f in dataclasses.fields(TrainSettings)}
        bad = sorted(set(data.get("train", {})) - known)
        if bad:
            raise ConfigError(bad[0], f"unknown field in [train]; allowed: {sorted(known)}")
        return cls(model, TrainSettings(**data.get("train", {}))).validate()

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "train": dataclasses.asdict(self.train)}

    def unused_fields(self) -> set[str]:
        """Settings this run never reads: the learned ghosts' rates and pre-training
        (:data:`LEARNED_GHOST_FIELDS`) unless its ghosts learn (mechanism ``"learned"`` with the
        ghost learner). Copy and replicate ghosts, backprop and feedback alignment give the same
        bits whatever those fields hold."""
        if self.model.mechanism == "learned" and self.train.learner == "ghost":
            return set()
        return set(LEARNED_GHOST_FIELDS)

    def changes(self, other: "TrainConfig", ignore=()) -> list[tuple[str, object, object]]:
        """``("section.field", mine, other's)`` for every setting that differs, except the
        fields in ``ignore`` and those that neither run reads (:meth:`unused_fields`)."""
        a, b = self.to_dict(), other.to_dict()
        skip = (self.unused_fields() & other.unused_fields()) | set(ignore)
        return [(f"{sec}.{k}", a[sec][k], b[sec].get(k))
                for sec in ("model", "train") for k in a[sec]
                if f"{sec}.{k}" not in skip and a[sec][k] != b[sec].get(k)]

    def differences(self, other: "TrainConfig", ignore=()) -> list[str]:
        """:meth:`changes` as ``"section.field (mine -> other's)"``."""
        return [f"{k} ({x!r} -> {y!r})" for k, x, y in self.changes(other, ignore)]

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a TOML file; a relative ``data_source`` is resolved against the file's folder.
        Errors name the file."""
        path = Path(path)
        text = read_config_text(path)
        try:
            data = parse_toml(text)
            train = data.get("train") if isinstance(data, dict) else None
            if isinstance(train, dict) and isinstance(train.get("data_source"), str):
                src = train["data_source"]
                if src and not Path(src).expanduser().is_absolute():
                    train["data_source"] = str((path.resolve().parent / src).resolve())
            return cls.from_dict(data)
        except ConfigError as exc:
            if exc.path is not None:
                raise
            raise ConfigError(exc.field, str(exc).split(": ", 1)[1], path) from None
