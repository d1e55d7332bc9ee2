"""Independent references: backprop and feedback alignment with torch.autograd, and the dynamics
integrated by scipy's solve_ivp. They share no code with the kernels or the plasticity.

Cost: ``C = mean over the batch of 0.5 |y - r_L|^2`` with ``r_L`` the feedforward output, the cost
the network's updates approximate (docs/model.md §3, property 2); with ``cost = 'cross_entropy'``
torch's ``cross_entropy`` of the feedforward logits ``a_L`` (softmax inside) against the target
probabilities, batch mean.
"""
from __future__ import annotations

import numpy as np
import torch

from ghostnet.model.config import ModelConfig
from ghostnet.model.params import Params

TORCH_PHI = {
    "logistic": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": torch.nn.functional.softplus,
    "relu": torch.relu,
}


class _FALinear(torch.autograd.Function):
    """``a = r W^T + b`` whose backward sends the error through the fixed feedback ``B`` (n_in x
    n_out, the ``B_l`` of docs/model.md §1) instead of ``W^T``: feedback alignment."""

    @staticmethod
    def forward(ctx, r, W, b, B):
        ctx.save_for_backward(r, W, B)
        return r @ W.T + b

    @staticmethod
    def backward(ctx, grad_a):
        r, W, B = ctx.saved_tensors
        return grad_a @ B.T, grad_a.T @ r, grad_a.sum(0), None


def _tensors(params: Params, dtype):
    W = [torch.tensor(w, dtype=dtype, requires_grad=True) for w in params.W]
    b = [torch.tensor(c, dtype=dtype, requires_grad=True) for c in params.b]
    B = [torch.tensor(m, dtype=dtype) for m in params.B]
    return W, b, B


def _cost(config: ModelConfig, a, r, target):
    """The batch mean of ``0.5 |y - phi(a_L)|^2`` (cost 'mse') or of ``-sum y log softmax(a_L)``
    (cost 'cross_entropy')."""
    if config.cost == "cross_entropy":
        return -(target * torch.log_softmax(a, dim=1)).sum(dim=1).mean()
    return 0.5 * ((target - r) ** 2).sum(dim=1).mean()


def _layer_map(config: ModelConfig, i: int, r, K):
    """Layer i+1's forward map with kernel (or matrix) ``K``, written from docs/torch_engine.md:
    ``conv2d`` then ``avg_pool2d``, or a matrix product on the flattened input."""
    F = torch.nn.functional
    if config.is_conv(i):
        s = config.layers[i]
        z = F.conv2d(r, K, padding=s["padding"])
        return F.avg_pool2d(z, s["pool"]) if s["pool"] > 1 else z
    return r.reshape(r.shape[0], -1) @ K.T


def _layer_gradients(config: ModelConfig, params: Params, x, y, feedback_alignment: bool,
                     device=None):
    """Backprop (or feedback alignment) for a ``layers`` network by torch.autograd. Feedback
    alignment: layer l+1's output depends on its input through ``A_{l+1}(B_l)`` for the backward
    pass only (``A(W) r.detach() + A(B) r - (A(B) r).detach()``), so autograd sends the error back
    through the feedback kernel's transpose map and takes W's gradient as usual."""
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    f = TORCH_PHI[config.transfer]
    W = [torch.tensor(w, dtype=dtype, device=device, requires_grad=True) for w in params.W]
    b = [torch.tensor(c, dtype=dtype, device=device, requires_grad=True) for c in params.b]
    B = [torch.tensor(np.asarray(m), dtype=dtype, device=device) for m in params.B]
    r = torch.tensor(np.asarray(x), dtype=dtype, device=device)
    r = r.reshape(r.shape[0], *config.shapes[0])
    for i in range(len(W)):
        bias = b[i].view(1, -1, 1, 1) if config.is_conv(i) else b[i]
        if feedback_alignment and i > 0:
            K = B[i - 1] if config.is_conv(i) else B[i - 1].T
            fb = _layer_map(config, i, r, K)
            a = _layer_map(config, i, r.detach(), W[i]) + fb - fb.detach() + bias
        else:
            a = _layer_map(config, i, r, W[i]) + bias
        r = f(a)
    target = torch.tensor(np.asarray(y), dtype=dtype, device=device)
    cost = _cost(config, a, r, target)
    cost.backward()
    return ([w.grad.cpu().numpy() for w in W], [c.grad.cpu().numpy() for c in b],
            float(cost.detach()))


def _gradients(config: ModelConfig, params: Params, x, y, feedback_alignment: bool):
    if config.layers:
        device = None
        if config.engine == "torch":  # on the engine's device
            from ghostnet.engines.torch import resolve_device

            device = resolve_device(config.device)
        return _layer_gradients(config, params, x, y, feedback_alignment, device)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    f = TORCH_PHI[config.transfer]
    W, b, B = _tensors(params, dtype)
    r = torch.tensor(np.asarray(x), dtype=dtype)
    for i in range(len(W)):
        if feedback_alignment and i > 0:
            a = _FALinear.apply(r, W[i], b[i], B[i - 1])
        else:
            a = r @ W[i].T + b[i]
        r = f(a)
    target = torch.tensor(np.asarray(y), dtype=dtype)
    cost = _cost(config, a, r, target)
    cost.backward()
    return [w.grad.numpy() for w in W], [c.grad.numpy() for c in b], float(cost.detach())


def backprop_gradients(config: ModelConfig, params: Params, x: np.ndarray, y: np.ndarray):
    """``(dC/dW list, dC/db list, C)`` by torch.autograd on the feedforward network; ``C`` is
    ``config.cost`` (module docstring)."""
    return _gradients(config, params, x, y, feedback_alignment=False)


def feedback_alignment_gradients(config: ModelConfig, params: Params, x: np.ndarray, y: np.ndarray):
    """Feedback alignment's pseudo-gradients ``(dW list, db list, C)``: the error goes back through
    the feedback weights ``B_l`` (custom autograd function) instead of ``W_{l+1}^T``."""
    return _gradients(config, params, x, y, feedback_alignment=True)


# ---- the dynamics with solve_ivp ------------------------------------------------------------
def _np_phi(x, name):
    if name == "logistic":
        return 0.5 * (1.0 + np.tanh(0.5 * x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softplus":
        return np.logaddexp(0.0, x)
    return np.maximum(x, 0.0)


def ivp_phase(
    config: ModelConfig, params: Params, x: np.ndarray, u0: list[np.ndarray], v0: list[np.ndarray],
    duration: float, y: np.ndarray | None = None, beta: float = 0.0, hold_ghosts: bool = False,
    rtol: float = 1e-10, atol: float = 1e-12,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Integrate docs/model.md §2 for ``duration`` with ``solve_ivp`` (DOP853) from ``(u0, v0)``; the
    equations are written out here from the specification, independently of the kernels. With
    ``cost = 'cross_entropy'`` the output's rate (what the feedback carries) is ``u_L``, its
    ghosts' rate is ``v``, and the nudge is ``beta (y - softmax(u_L))`` (scipy's softmax).
    Returns the final ``(u, v)``."""
    from scipy.integrate import solve_ivp

    name = config.transfer
    W, b, B, G, c, H = params.W, params.b, params.B, params.G, params.c, params.H
    L = len(W)
    shapes_u = [a.shape for a in u0]
    shapes_v = [a.shape for a in v0]
    sizes = [int(np.prod(s)) for s in shapes_u + shapes_v]
    offsets = np.cumsum([0] + sizes)

    def unpack(z):
        parts = [z[offsets[k]:offsets[k + 1]] for k in range(len(sizes))]
        u = [p.reshape(s) for p, s in zip(parts[:L], shapes_u)]
        v = [p.reshape(s) for p, s in zip(parts[L:], shapes_v)]
        return u, v

    from scipy.special import softmax

    xent = config.cost == "cross_entropy"

    def rate(x, layer):  # the rate of pyramidal layer `layer` (0-based) or of its ghosts
        return x if xent and layer == L - 1 else _np_phi(x, name)

    def field(_t, z):
        u, v = unpack(z)
        r = [rate(ui, l) for l, ui in enumerate(u)]
        du, dv = [], []
        for l in range(L):
            pre = x if l == 0 else r[l - 1]
            a = pre @ W[l].T + b[l]
            if l < L - 1:
                top = r[l + 1] @ B[l].T - rate(v[l], l + 1) @ H[l].T
            elif y is not None:
                top = beta * (y - (softmax(u[l], axis=1) if xent else r[l]))
            else:
                top = 0.0
            du.append((-u[l] + a + top) / config.tau)
        for l in range(L - 1):
            if hold_ghosts:
                dv.append(np.zeros_like(v[l]))
            elif config.mechanism == "replicate":
                dv.append((-v[l] + u[l + 1]) / config.tau_g)
            else:
                dv.append((-v[l] + r[l] @ G[l].T + c[l]) / config.tau_g)
        return np.concatenate([d.ravel() for d in du + dv])

    z0 = np.concatenate([a.ravel() for a in list(u0) + list(v0)]).astype(np.float64)
    sol = solve_ivp(field, (0.0, duration), z0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    u, v = unpack(sol.y[:, -1])
    return [a.copy() for a in u], [a.copy() for a in v]
