"""Every file under configs/ loads (with its includes) and validates against its folder's schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoirecon.config import compose, validate
from hoirecon.schema import SCHEMAS

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert any(path.parent.name == "fit" for path in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_loads_and_validates(path):
    folder = path.relative_to(path.parents[1]).parts[0]
    assert folder in SCHEMAS, f"configs/{folder}/ has no schema in hoirecon.schema.SCHEMAS"
    validate(compose(path), SCHEMAS[folder])
