"""Learners: the ghost network's local learning and its baselines, backprop and feedback
alignment (by torch.autograd), behind one ``step`` / ``predict`` interface.

Every learner produces an :class:`Update` that points downhill; its ``optimizer``
(:class:`ghostnet.learning.optim.Optimizer`, plain SGD when none is given) applies it.

Backprop and feedback alignment run on torch tensors that share memory with the numpy
parameters (``torch.from_numpy``: no copies, the optimizer's in-place steps are seen at once);
the backward pass starts from minus the cost, so the gradients torch leaves are the downhill
update itself, handed to the optimizer without a copy. ``ghostnet.checks.reference`` computes the
same gradients independently (tested against it).
"""
from __future__ import annotations

import numpy as np

from ghostnet.learning.data import one_hot
from ghostnet.learning.settings import TrainConfig
from ghostnet.model.params import Params
from ghostnet.model.plasticity import Update, sgd_step
from ghostnet.network.network import GhostNetwork


class Learner:
    """Holds parameters; ``step(x, y, lrs)`` learns from a batch and returns the output rates
    (ghost learner: the free phase's, which come for free) or None.

    Every learner produces an :class:`Update` that points downhill; ``optimizer``
    (:class:`ghostnet.learning.optim.Optimizer`; plain SGD when None) applies it.

    Each step also notes what the trainer checks (:meth:`reset_counts` clears them): ``steps``,
    ``zero_updates`` (steps whose update was exactly zero in every layer), ``unsettled`` (ghost
    learner: phases that did not settle, ``PhaseResult.converged`` false) and ``nonfinite`` (the
    step's outputs, cost or update held NaN or infinity)."""

    def __init__(self, cfg: TrainConfig, params: Params, optimizer=None):
        self.cfg = cfg
        self.net = GhostNetwork(cfg.model, params)
        self.optimizer = optimizer
        self._torch = None
        self.reset_counts()

    def reset_counts(self, counts: dict | None = None) -> None:
        c = counts or {}
        self.steps = int(c.get("steps", 0))
        self.zero_updates = int(c.get("zero_updates", 0))
        self.unsettled = int(c.get("unsettled", 0))
        self.nonfinite = False

    def counts(self) -> dict:
        return {"steps": self.steps, "zero_updates": self.zero_updates,
                "unsettled": self.unsettled}

    def _note(self, dW, db, finite_out: bool) -> None:
        self.steps += 1
        # cheap first: the bias updates' sums (NaN and infinity survive a sum), then W only when
        # every bias update is zero
        total = sum(float(np.sum(d)) for d in db)
        self.nonfinite = not (finite_out and np.isfinite(total))
        if not any(np.any(d) for d in db) and not any(np.any(d) for d in dW):
            self.zero_updates += 1

    @property
    def params(self) -> Params:
        return self.net.params

    def apply(self, update: Update, lrs) -> None:
        """The optimizer's step along ``update`` (plain SGD without one)."""
        if self.optimizer is None:
            sgd_step(self.cfg.model, self.params, update, lrs)
        else:
            self.optimizer.step(self.params, update, list(lrs))

    def step(self, x, y, lrs):
        if self.cfg.train.learner == "ghost":
            pair = self.net.step(x, y, lrs, apply=self.apply)
            out = pair.prediction
            self.unsettled += (not pair.free_result.converged) + (not pair.nudged_result.converged)
            self._note(pair.update.dW, pair.update.db, bool(np.isfinite(out).all()))
            return out
        update, cost = self.downhill(x, y)
        self._note(update.dW, update.db, bool(np.isfinite(cost)))
        self.apply(update, lrs)
        return None

    def downhill(self, x, y) -> tuple[Update, float]:
        """Backprop or feedback alignment: minus the (pseudo-)gradient of the batch cost, and
        the cost."""
        m = self.cfg.model
        if m.layers or m.engine != "numba":  # general layers: the references' autograd path
            from ghostnet.checks import reference

            grads = (reference.backprop_gradients if self.cfg.train.learner == "backprop"
                     else reference.feedback_alignment_gradients)
            gW, gb, cost = grads(m, self.params, x, y)
            return Update([-g for g in gW], [-g for g in gb], []), float(cost)
        if self._torch is None or not self._torch.fits(self.params):
            self._torch = _TorchGradients(self.cfg, self.params)
        return self._torch(x, y)

    def predict(self, x):
        if self.cfg.train.learner == "ghost":
            return self.net.predict(x)
        return self.net.engine.feedforward(self.params, np.asarray(x, self.cfg.model.dtype))


class _TorchGradients:
    """Minus the gradient of the batch cost (``0.5 |y - r_L|^2``, or the cross-entropy of the
    logits ``a_L`` with ``cost = 'cross_entropy'``; batch mean) by torch.autograd, on tensors that
    share memory with ``params`` (backprop; feedback alignment sends the error through ``B``)."""

    def __init__(self, cfg: TrainConfig, params: Params):
        import torch

        from ghostnet.checks.reference import TORCH_PHI, _FALinear

        self.torch, self.fa_linear = torch, _FALinear
        self.fa = cfg.train.learner == "fa"
        self.phi = TORCH_PHI[cfg.model.transfer]
        self.xent = cfg.model.cost == "cross_entropy"
        self.src = list(params.W) + list(params.b) + (list(params.B) if self.fa else [])
        self.W = [torch.from_numpy(w).requires_grad_() for w in params.W]
        self.b = [torch.from_numpy(c).requires_grad_() for c in params.b]
        self.B = [torch.from_numpy(np.ascontiguousarray(m)) for m in params.B] if self.fa else []

    def fits(self, params: Params) -> bool:
        """Whether the tensors still share memory with ``params`` (the same arrays)."""
        now = list(params.W) + list(params.b) + (list(params.B) if self.fa else [])
        return len(now) == len(self.src) and all(a is b for a, b in zip(now, self.src))

    def __call__(self, x, y) -> tuple[Update, float]:
        torch = self.torch
        r = torch.from_numpy(np.ascontiguousarray(x, dtype=self.src[0].dtype))
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            if self.fa and i > 0:
                a = self.fa_linear.apply(r, W, b, self.B[i - 1])
            else:
                a = torch.addmm(b, r, W.t())
            r = self.phi(a)
        target = torch.from_numpy(np.ascontiguousarray(y, dtype=self.src[0].dtype))
        if self.xent:
            minus_cost = -torch.nn.functional.cross_entropy(a, target)  # a: the logits
        else:
            minus_cost = -0.5 * ((target - r) ** 2).sum() / r.shape[0]
        for t in self.W + self.b:
            t.grad = None
        minus_cost.backward()
        return (Update([w.grad.numpy() for w in self.W], [c.grad.numpy() for c in self.b], []),
                -minus_cost.item())


def evaluate(learner: Learner, x, labels, n_classes, batch=1000) -> tuple[float, float]:
    """Accuracy and cost of the learner's prediction, mean over the samples: the model's
    ``cost``, ``0.5 |y - r|^2`` (mse) or ``-log p_label`` (cross_entropy, ``p`` the softmax
    probabilities; ``p`` is floored at the dtype's smallest normal number, so a certain wrong
    answer costs about 708 in float64 instead of infinity)."""
    xent = learner.cfg.model.cost == "cross_entropy"
    correct, cost = 0, 0.0
    for s in range(0, len(x), batch):
        r = learner.predict(x[s:s + batch])
        lab = np.asarray(labels[s:s + batch])
        correct += int(np.sum(np.argmax(r, axis=1) == lab))
        if xent:
            picked = r[np.arange(len(lab)), lab]
            cost += float(-np.sum(np.log(np.maximum(picked, np.finfo(r.dtype).tiny))))
        else:
            cost += float(0.5 * np.sum((one_hot(lab, n_classes, r.dtype) - r) ** 2))
    return correct / len(x), cost / len(x)
