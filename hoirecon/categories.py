"""Object categories the project knows: HOI4D's six rigid ones DiffHOI evaluates, and everyday others."""

from __future__ import annotations

import re

HOI4D_CATEGORIES: tuple[str, ...] = ("mug", "bottle", "kettle", "bowl", "knife", "toycar")
KNOWN_CATEGORIES: tuple[str, ...] = (*HOI4D_CATEGORIES, "cup", "can", "box", "ball", "spraybottle")


def normalize_category(text: str) -> str:
    """'Toy Car' / 'toy_car' / 'ToyCar' -> 'toycar'; DiffHOI's prompt sentence -> its last word(s)."""
    text = text.strip().lower()
    prefix = "an image of a hand grasping a "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return re.sub(r"[\s_\-]+", "", text)
