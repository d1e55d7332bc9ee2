"""References and checks: backprop and feedback alignment by torch.autograd, gradcheck, angles, the Brian2 cross-check."""
