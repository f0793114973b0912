"""Rendering: soft mesh rasteriser (hand), volume rendering (object SDF), depth-ordered compositing."""
