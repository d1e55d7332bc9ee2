"""The model's description: configuration, parameters, transfer functions, state and local plasticity."""
