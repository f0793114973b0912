"""Synthetic data: procedural objects, grasps, clips and prior-training renders."""
