"""The sweep files under experiments/sweeps: each one loads (every point resolves and validates),
and each named point runs what its name says: the learner, the ghost mechanism and the feedback
("fa": feedback alignment through random feedback; "ghost-copy-random": copy ghosts, random
feedback; "ghost-learned...": learned ghosts with rates and pre-training), from the same initial
weights and data order for every point of a seed."""
from __future__ import annotations

from pathlib import Path

import pytest

from ghostnet.learning import sweep as sw

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "sweeps").glob("*.toml"))
EXPECTED = {  # name -> (learner, mechanism, feedback)
    "backprop": ("backprop", None, "symmetric"),
    "fa": ("fa", None, "random"),
    "ghost-copy-symmetric": ("ghost", "copy", "symmetric"),
    "ghost-copy-random": ("ghost", "copy", "random"),
    "ghost-learned": ("ghost", "learned", "symmetric"),
    "ghost-learned-symmetric": ("ghost", "learned", "symmetric"),
    "search": ("backprop", None, "symmetric"),  # a backprop search on the validation split
}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_experiment_sweep_points_are_what_their_names_say(path):
    s = sw.load_sweep(path)
    assert s.points
    seeds: dict[int, set] = {}
    for p in s.points:
        assert p.label in EXPECTED, f"{path.name}: unnamed or unknown point {p.label!r}"
        learner, mechanism, feedback = EXPECTED[p.label]
        m, t = p.config.model, p.config.train
        assert (t.learner, m.feedback) == (learner, feedback), p.dirname
        if mechanism is not None:
            assert m.mechanism == mechanism, p.dirname
        if m.mechanism == "learned":
            assert t.pretrain > 0, f"{p.dirname}: learned ghosts without pre-training"
        assert m.seed == t.seed  # initial weights and data order from the one seed
        assert p.dirname.startswith(p.label)
        # every point of a seed shares the network, the data and the training schedule
        if p.label == "search":
            assert t.val_size > 0, f"{p.dirname}: a search needs a validation split"
            continue
        seeds.setdefault(t.seed, set()).add((str(m.layers), str(m.sizes), t.dataset,
                                             t.epochs, t.batch_size, t.val_size))
    assert all(len(v) == 1 for v in seeds.values()), seeds
