"""Evaluation: shape and hand accuracy (functions and torchmetrics Metrics)."""
