"""One mapping validated into one dataclass, strictly: unknown keys, bad types and values outside a
field's declared ``ranged(...)`` are one-line errors.

The common ground of ``hoirecon.registry`` (a component's section into its ``Config``) and
``hoirecon.config`` (a whole run config into its schema); it imports neither, so neither needs the
other to validate (docs/architecture.md, section Layers).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from hoirecon.errors import ConfigError

T = TypeVar("T")


def make_config(cls: type[T], values: Mapping[str, Any] | None, component: str, where: str | None = None) -> T:
    """Validate ``values`` into the dataclass ``cls``; unknown keys and bad types are errors.

    ``component`` names what is being configured in messages (e.g. "sdf 'mlp' (hoirecon.sdf.mlp.MLPSDF)")
    and ``where`` the dotted path of the section in the whole config, when there is one.
    """
    prefix = f"{where}." if where else ""
    values = plain(values or {})
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            guess = f" Did you mean: '{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown key '{prefix}{key}' for {component}.{guess} Known keys: {', '.join(known) or '(none)'}"
            )
    try:
        config = _merged(cls, values)
    except OmegaConfBaseException as exc:
        _raise_omegaconf(exc, cls, values, prefix, component)
    check_ranges(config, prefix, component)
    return config  # type: ignore[return-value]


def _merged(cls: type[T], values: Mapping[str, Any]) -> T:
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))  # type: ignore[return-value]


def _raise_omegaconf(
    exc: OmegaConfBaseException, cls: type, values: Mapping[str, Any], prefix: str, component: str
) -> None:
    """OmegaConf's error as one line naming the key; with a bad value, every bad value of ``values``
    (OmegaConf stops at the first: each value is tried alone to find the others)."""
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    if isinstance(exc, ConfigKeyError) and key:
        message = omegaconf_message(exc)
        suggestion = message[message.find("Did you mean") :] if "Did you mean" in message else ""
        raise ConfigError(f"unknown key '{prefix}{key}' for {component}. {suggestion}".strip()) from None
    problems = []
    for path, value in _leaves(values):
        single: dict[str, Any] = {}
        node = single
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        try:
            _merged(cls, single)
        except OmegaConfBaseException as alone:
            problems.append(f"'{prefix}{'.'.join(path)}': {omegaconf_message(alone)}")
    if len(problems) < 2:  # one bad value (or one that is bad only beside the others): OmegaConf's words
        where_key = f"'{prefix}{key}' " if key else ""
        raise ConfigError(f"bad value {where_key}for {component}: {omegaconf_message(exc)}") from None
    more = f" (and {len(problems) - 1} more: " + "; ".join(problems[1:]) + ")"
    raise ConfigError(f"bad value {problems[0]} for {component}{more}") from None


def _leaves(values: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(key path, value) of every value that is not a mapping (a list is one value)."""
    out = []
    for k, v in values.items():
        out += _leaves(v, (*path, str(k))) if isinstance(v, Mapping) and v else [((*path, str(k)), v)]
    return out


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of one config field: bounds (inclusive ``at_least``/``at_most``, exclusive
    ``above``/``below``) for numbers (each element, for a list) or ``choices`` for strings."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        parts = [
            f"{sign} {bound:g}"
            for sign, bound in ((">=", self.at_least), (">", self.above), ("<=", self.at_most), ("<", self.below))
            if bound is not None
        ]
        return "a finite number " + " and ".join(parts) if parts else "a finite number"

    def allows(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
            and (self.below is None or value < self.below)
        )


def ranged(default: Any, **bounds: Any) -> Any:
    """A dataclass field with its allowed values next to it, checked by ``make_config``::

    max_steps: int = ranged(2000, at_least=1)
    heldout: str = ranged("last", choices=("first", "last"))
    proportions: list[float] = ranged([0.3, 0.7], at_least=0)  # every element
    """
    allowed = Range(**bounds)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"range": allowed})
    return dataclasses.field(default=default, metadata={"range": allowed})


def check_ranges(config: Any, prefix: str, component: str) -> None:
    """Every field of ``config`` (and of its nested dataclasses) inside its declared ``Range``; floats
    without one must still be finite. Raises one ConfigError naming every key out of range and its
    range, on one line."""
    problems = _out_of_range(config, prefix)
    if problems:
        more = f" (and {len(problems) - 1} more: " + "; ".join(problems[1:]) + ")" if len(problems) > 1 else ""
        raise ConfigError(f"bad value {problems[0]} for {component}{more}")


def _out_of_range(config: Any, prefix: str) -> list[str]:
    problems = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            problems += _out_of_range(value, key + ".")
            continue
        allowed = f.metadata.get("range")
        if allowed is None:
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"'{key}': {value} (allowed: a finite number)")
            continue
        items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        if not all(allowed.allows(item) for item in items):
            problems.append(f"'{key}': {value!r} (allowed: {allowed.describe()})")
    return problems


def plain(values: Any) -> Any:
    """An OmegaConf node, a dataclass instance or a mapping as plain Python containers."""
    if isinstance(values, DictConfig) or OmegaConf.is_config(values):
        return OmegaConf.to_container(values, resolve=True)
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return dataclasses.asdict(values)
    return dict(values) if isinstance(values, Mapping) else values


def omegaconf_message(exc: OmegaConfBaseException) -> str:
    """The first line of an OmegaConf error, without its multi-line context."""
    msg = getattr(exc, "msg", None) or str(exc)
    return msg.strip().splitlines()[0]
