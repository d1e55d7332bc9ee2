"""Learning: datasets and the trainer."""
