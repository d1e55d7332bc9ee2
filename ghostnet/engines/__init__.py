"""Engines: what settles the network's phases (see :mod:`ghostnet.engines.base`)."""
from ghostnet.engines.base import Engine, available, engine_for

__all__ = ["Engine", "available", "engine_for"]
