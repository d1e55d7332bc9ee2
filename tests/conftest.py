"""Shared fixtures: a seeded Generator per test (no global RNG), small networks."""
from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A Generator seeded from the test's name: reproducible and independent between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def torch_forward(config, params, x):
    """Feedforward potentials a_l by torch, independently of ghostnet (docs/model.md §3, property 1)."""
    import torch

    from ghostnet.checks.reference import TORCH_PHI

    f = TORCH_PHI[config.transfer]
    r = torch.tensor(np.asarray(x, dtype=np.float64))
    out = []
    for W, b in zip(params.W, params.b):
        a = r @ torch.tensor(W, dtype=torch.float64).T + torch.tensor(b, dtype=torch.float64)
        out.append(a.numpy())
        r = f(a)
    return out
