"""Optimizers and learning-rate schedules applied to any learner's :class:`Update`.

A learner (the ghost network's local rule, backprop, feedback alignment) produces an ``Update``
that points downhill; :class:`Optimizer` turns it into a parameter change, in place, and then
keeps the derived weights in step (:meth:`Params.sync`: copy ghosts, symmetric ``B``), as
:func:`ghostnet.model.plasticity.sgd_step` does.

- ``sgd``: ``buf <- mu buf + d``; ``p += lr (d + mu buf)`` (Nesterov) or ``p += lr buf``;
  with ``mu = 0`` simply ``p += lr d``, bit for bit the arithmetic of ``sgd_step``. This is
  torch.optim.SGD (dampening 0) with the gradient ``-d``.
- ``adam``: ``m <- b1 m + (1 - b1) d``, ``v <- b2 v + (1 - b2) d^2``,
  ``p += lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``: torch.optim.Adam.
- decoupled weight decay (AdamW, SGDW): ``p *= 1 - lr_t wd`` before the step, on the weights
  ``W`` (and a plastic ``B``), not on the biases. ``[model] weight_decay`` (Kolen-Pollack's) is the
  same decay; one of the two may be set.

The state (``buf``, ``m``, ``v``) is per synapse: each weight's state sees only that weight's own
updates, nothing of its neighbours' (Adam's step count ``t`` is one clock shared by all).

Schedules (:func:`lr_factor`) are functions of the step index alone, so a resumed run replays them
exactly; the optimizer's state travels in the checkpoint (:meth:`Optimizer.state_arrays`).
"""
from __future__ import annotations

import math

import numpy as np

from ghostnet.learning.settings import TrainSettings
from ghostnet.model.config import ModelConfig
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, _add_scaled

__all__ = ["Optimizer", "lr_factor"]


def lr_factor(t: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """The schedule's factor on the base learning rate at optimizer step ``step`` (0-based).

    Warm-up (``warmup_epochs`` > 0, ``w`` steps): ``(step + 1) / w`` for ``step < w``. Then
    'constant': 1; 'step': ``step_gamma ** (epoch // step_epochs)`` with ``epoch = step //
    steps_per_epoch`` (0-based); 'cosine': ``r + (1 - r) (1 + cos(pi k / K)) / 2`` over the ``K``
    steps after the warm-up, ``k`` counted from its end, ``r = lr_min_ratio``.
    """
    warm = int(round(t.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    if t.schedule == "constant":
        return 1.0
    if t.schedule == "step":
        return t.step_gamma ** ((step // steps_per_epoch) // t.step_epochs)
    total = t.epochs * steps_per_epoch - warm
    k = min(step - warm, total)
    r = t.lr_min_ratio
    return r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * k / total)) if total > 0 else 1.0


class Optimizer:
    """Applies :class:`Update` objects to ``params`` per the ``[train]`` settings (module docstring)."""

    def __init__(self, settings: TrainSettings, model: ModelConfig, params: Params):
        self.t, self.model = settings, model
        self.kind = settings.optimizer
        self.mu = float(settings.momentum)
        self.wd = float(settings.weight_decay or model.weight_decay)
        self.steps = 0
        shapes = [("W", a) for a in params.W] + [("b", a) for a in params.b]
        if model.feedback == "plastic":
            shapes += [("B", a) for a in params.B]
        self._like = [(k, a.shape, a.dtype) for k, a in shapes]
        self.slots = {}
        if self.kind == "sgd" and self.mu:
            self.slots["buf"] = [np.zeros(s, d) for _, s, d in self._like]
        if self.kind == "adam":
            self.slots["m"] = [np.zeros(s, d) for _, s, d in self._like]
            self.slots["v"] = [np.zeros(s, d) for _, s, d in self._like]

    # ---- the step -----------------------------------------------------------------------------
    def step(self, params: Params, update: Update, lrs: list[float]) -> None:
        """``params`` moved along ``update`` with per-layer rates ``lrs`` (already scheduled)."""
        L = len(params.W)
        if len(lrs) != L:
            raise ValueError(f"need one learning rate per layer ({L}), got {len(lrs)}")
        self.steps += 1
        # (parameter, its update, rate, decays?) in the order of self._like
        items = [(params.W[i], update.dW[i], lrs[i], True) for i in range(L)]
        items += [(params.b[i], update.db[i], lrs[i], False) for i in range(L)]
        if self.model.feedback == "plastic" and update.dB:  # Kolen-Pollack: B_l moves at
            # W_{l+1}'s rate (the backprop and FA learners send no dB: B stays)
            items += [(params.B[i], update.dB[i], lrs[i + 1], True) for i in range(L - 1)]
        for k, (p, d, lr, decays) in enumerate(items):
            if decays and self.wd:
                p *= 1.0 - lr * self.wd
            if self.kind == "adam":
                self._adam(k, p, d, lr)
            elif self.mu:
                self._momentum(k, p, d, lr)
            elif k < 2 * L:  # plain SGD: sgd_step's own arithmetic, bit for bit
                _add_scaled(p, lr, d)
            else:
                p += lr * d.astype(p.dtype, copy=False)
        params.sync(self.model)

    def _momentum(self, k: int, p: np.ndarray, d: np.ndarray, lr: float) -> None:
        buf = self.slots["buf"][k]
        buf *= self.mu
        _add_scaled(buf, 1.0, d)
        if self.t.nesterov:
            _add_scaled(p, lr, d)
            _add_scaled(p, lr * self.mu, buf)
        else:
            _add_scaled(p, lr, buf)

    def _adam(self, k: int, p: np.ndarray, d: np.ndarray, lr: float) -> None:
        b1, b2 = self.t.adam_betas
        m, v = self.slots["m"][k], self.slots["v"][k]
        d = d.astype(p.dtype, copy=False)
        m *= b1
        m += (1.0 - b1) * d
        v *= b2
        v += (1.0 - b2) * (d * d)
        denom = np.sqrt(v)
        denom /= math.sqrt(1.0 - b2 ** self.steps)
        denom += self.t.adam_eps
        _add_scaled(p, lr / (1.0 - b1 ** self.steps), m / denom)

    # ---- state for checkpoints -----------------------------------------------------------------
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state as named arrays (``optim_<slot>_<k>`` and ``optim_steps``)."""
        out = {f"optim_{name}_{k}": a for name, lst in self.slots.items() for k, a in enumerate(lst)}
        out["optim_steps"] = np.array(self.steps)
        return out

    def load_state(self, arrays) -> None:
        """Restore what :meth:`state_arrays` gave (``arrays``: a mapping such as an open .npz)."""
        try:
            self.steps = int(arrays["optim_steps"])
            for name, lst in self.slots.items():
                for k, a in enumerate(lst):
                    src = arrays[f"optim_{name}_{k}"]
                    if src.shape != a.shape:
                        raise ValueError(f"optimizer state {name}_{k}: shape {src.shape}, "
                                         f"the parameters need {a.shape}")
                    a[...] = src
        except KeyError as exc:
            raise ValueError(f"the checkpoint has no optimizer state {exc} for optimizer "
                             f"{self.kind!r}") from None
