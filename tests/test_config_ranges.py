"""Every numeric config field declares its allowed values next to it (``ranged``), and a value just
outside them, or NaN, is a one-line ConfigError naming the key, for the run schemas and every
built-in component (issue 19, item 4)."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

import pytest

from hoirecon.dataclass_config import Range, make_config, ranged
from hoirecon.errors import ConfigError
from hoirecon.registry import REGISTRY
from hoirecon.schema import SCHEMAS


def _numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted key, field, type) of every int/float/list-of-numbers field, nested dataclasses walked."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            found += _numeric_fields(kind, f"{prefix}{f.name}.")
        elif kind in (int, float) or typing.get_args(kind) in ((int,), (float,)):
            found.append((prefix + f.name, f, kind))
    return found


def _outside(allowed: Range, kind: Any) -> list[Any]:
    """Values just outside ``allowed`` (and NaN for floats)."""
    is_int = kind is int or typing.get_args(kind) == (int,)
    step = 1 if is_int else 1e-3
    bad = []
    if allowed.at_least is not None:
        bad.append(allowed.at_least - step)
    if allowed.above is not None:
        bad.append(allowed.above)
    if allowed.at_most is not None:
        bad.append(allowed.at_most + step)
    if allowed.below is not None:
        bad.append(allowed.below)
    if not is_int:
        bad.append(math.nan)
    return [int(b) if is_int else b for b in bad]


def _nested(dotted: str, value: Any) -> dict:
    head, _, rest = dotted.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _components() -> list[tuple[str, str, type]]:
    REGISTRY.load_builtins()
    return [(role, name, e.obj.Config) for role, entries in REGISTRY._entries.items() for name, e in entries.items()]


CLASSES = [(name, cls) for name, cls in SCHEMAS.items()] + [(f"{r} {n}", c) for r, n, c in _components()]


@pytest.mark.parametrize("label, cls", CLASSES, ids=[label for label, _ in CLASSES])
def test_every_numeric_field_declares_a_range_and_refuses_values_outside_it(label, cls):
    fields = _numeric_fields(cls)
    undeclared = [key for key, f, _ in fields if "range" not in f.metadata]
    assert not undeclared, f"{label}: numeric fields without ranged(...): {undeclared}"
    for key, f, kind in fields:
        is_list = typing.get_origin(kind) is list
        for bad in _outside(f.metadata["range"], kind):
            values = _nested(key, [bad] if is_list else bad)
            with pytest.raises(ConfigError, match=rf"'x\.{key}'.*allowed") as info:
                make_config(cls, values, component=label, where="x")
            assert "\n" not in str(info.value)
        make_config(cls, {}, component=label)  # the defaults are inside their own ranges


def test_ranges_describe_themselves_and_check_lists_and_choices():
    assert Range(at_least=0, below=1).describe() == "a finite number >= 0 and < 1"
    assert Range(choices=("a", "b")).describe() == "one of a, b"
    r = Range(above=0, at_most=2)
    verdicts = [r.allows(v) for v in (0, 1e-9, 2, 2.001, math.inf, True, "1")]
    assert verdicts == [False, True, True, False, False, False, False]

    @dataclasses.dataclass
    class Section:
        shares: list[float] = ranged([0.5, 0.5], at_least=0)
        mode: str = ranged("a", choices=("a", "b"))
        free: float = 1.0  # no range: only finiteness

    assert make_config(Section, {"shares": [0.0, 2.0]}, component="s").shares == [0.0, 2.0]
    with pytest.raises(ConfigError, match=r"'shares'.*\[0.5, -0.5\].*>= 0"):
        make_config(Section, {"shares": [0.5, -0.5]}, component="s")
    with pytest.raises(ConfigError, match="'mode'.*one of a, b"):
        make_config(Section, {"mode": "c"}, component="s")
    with pytest.raises(ConfigError, match="'free'.*finite"):
        make_config(Section, {"free": math.inf}, component="s")
