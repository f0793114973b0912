"""Clips: the Clip dataclass, its validation, and the clip formats that load it."""
