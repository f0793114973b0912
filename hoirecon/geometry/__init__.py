"""Rigid transforms, pinhole cameras, rays and projection (OpenCV convention, metres)."""
