"""The ghost-unit network on an engine: phases, local errors, learning, mechanisms."""
from ghostnet.network.network import GhostNetwork, PhasePair

__all__ = ["GhostNetwork", "PhasePair"]
