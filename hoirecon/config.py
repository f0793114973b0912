"""Configs: YAML files with ``base:`` includes, dotted command-line overrides, strict validation.

Layering rules (lowest first): each ``base:`` file (a path or list of paths, relative to the file
that names it), then the file itself, then the overrides ``a.b.c=value``. Mappings merge key by
key and lists replace, except that a component section whose ``type`` changes is replaced whole:
``object.sdf.type=hashgrid`` drops the MLP's keys instead of leaving them to fail validation.

Validation turns the merged tree into the command's schema dataclass (``hoirecon.schema``) and
every component section into that component's ``Config`` (through the registry). The resolved
tree is saved as plain YAML in each run folder; resuming loads that file plus new overrides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hoirecon.dataclass_config import make_config, omegaconf_message, plain
from hoirecon.errors import ConfigError
from hoirecon.utils.io import atomic_write_text

T = TypeVar("T")


# -- reading and layering -------------------------------------------------------------------------


def read_yaml(path: str | Path) -> dict[str, Any]:
    """One YAML file as a plain dict; errors name the file (and line for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping at the top, not {type(data).__name__}")
    return data


def load_layers(path: str | Path, _stack: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A file merged over its ``base:`` includes (recursively), as a plain dict."""
    path = Path(path).resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError(f"{path}: 'base:' include cycle: {chain}")
    data = read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise ConfigError(f"{path}: 'base:' must be a path or a list of paths")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise ConfigError(f"{path}: base file '{base}' not found (looked at {base_path})")
        merged = merge_trees(merged, load_layers(base_path, (*_stack, path)))
    return merge_trees(merged, data)


def merge_trees(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of plain dicts; ``high`` wins. A mapping whose ``type`` changes is replaced."""
    out = dict(low)
    for key, value in high.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            type_changed = "type" in value and "type" in old and value["type"] != old["type"]
            out[key] = dict(value) if type_changed else merge_trees(old, value)
        else:
            out[key] = value
    return out


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{item}' is not of the form dotted.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node: dict[str, Any] = {}
        leaf = node
        parts = key.split(".")
        for part in parts[:-1]:
            leaf[part] = {}
            leaf = leaf[part]
        leaf[parts[-1]] = value
        tree = merge_trees(tree, node)
    return tree


def compose(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load ``path`` with its includes, apply overrides and resolve ``${...}`` interpolations."""
    tree = merge_trees(load_layers(path), parse_overrides(overrides))
    try:
        cfg = OmegaConf.create(tree)
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: {omegaconf_message(exc)}") from None
    return cfg


# -- validation -----------------------------------------------------------------------------------


def validate(cfg: DictConfig | Mapping[str, Any], schema: type[T], registry: Any = None) -> T:
    """The whole config as ``schema`` (a dataclass), with every component section validated too.

    ``schema.COMPONENTS`` maps dotted section paths to roles, e.g. ``{"object.sdf": "sdf"}``; an empty
    section is left to the command to choose.
    Plugins named under ``plugins:`` are loaded first so their components validate.
    """
    if registry is None:
        from hoirecon.registry import REGISTRY as registry
    tree = plain(cfg)
    problems = []  # the schema's and every component section's, not only the first's
    try:
        config = make_config(schema, tree, component=f"the {getattr(schema, 'NAME', schema.__name__)} config")
    except ConfigError as exc:
        problems.append(exc)
        config = None
    registry.load_modules(getattr(config, "plugins", None) or tree.get("plugins") or ())
    for path, role in getattr(schema, "COMPONENTS", {}).items():
        section = _lookup(tree, path)
        if section is None and config is not None:
            section = _lookup(dataclasses.asdict(config), path)  # the schema's default
        if section is None:
            continue
        if section == {}:
            continue  # an empty component section means "choose automatically" (e.g. detect a clip's layout)
        try:
            registry.config(role, section, where=path)
        except ConfigError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError("; ".join(str(p) for p in problems))
    return config


def _lookup(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# -- saving ---------------------------------------------------------------------------------------


def to_yaml(cfg: DictConfig | Mapping[str, Any]) -> str:
    """Plain YAML (no Python tags), interpolations resolved."""
    return yaml.safe_dump(plain(cfg), sort_keys=False, default_flow_style=None)


def save_config(cfg: DictConfig | Mapping[str, Any], path: str | Path) -> Path:
    """Write the resolved config atomically as plain YAML."""
    return atomic_write_text(path, to_yaml(cfg))


# -- schedules ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A scalar that may change with the step: ``v`` or ``[start_step, v0, v1, end_step]``.

    Linear from ``v0`` at ``start_step`` to ``v1`` at ``end_step``, constant outside. A step may be
    a share of the run, ``"40%"``, when ``max_steps`` is given: the same schedule then serves an
    800-step comparison and a 1500-step demo.
    """

    start_step: int
    v0: float
    v1: float
    end_step: int

    @classmethod
    def parse(cls, value: Any, name: str = "schedule", max_steps: int | None = None) -> Schedule:
        if isinstance(value, Schedule):
            return value
        expected = f"{name}: expected a number or [start_step, v0, v1, end_step], got {value!r}"
        if isinstance(value, bool):
            raise ConfigError(expected)
        if isinstance(value, (int, float)):
            return cls(0, float(value), float(value), 0)
        if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
            items = list(value)
            if len(items) == 4:
                items[0], items[3] = (_schedule_step(items[i], name, max_steps) for i in (0, 3))
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)
            if len(items) == 4 and numeric and all(math.isfinite(v) for v in items):
                start, v0, v1, end = items
                if float(start).is_integer() and float(end).is_integer() and start <= end:
                    return cls(int(start), float(v0), float(v1), int(end))
                raise ConfigError(f"{name}: steps must be whole numbers with start_step <= end_step, got {items}")
        raise ConfigError(expected)

    def __call__(self, step: int) -> float:
        if step <= self.start_step or self.end_step == self.start_step:
            return self.v0 if step <= self.start_step else self.v1
        if step >= self.end_step:
            return self.v1
        frac = (step - self.start_step) / (self.end_step - self.start_step)
        return self.v0 + frac * (self.v1 - self.v0)


def _schedule_step(value: Any, name: str, max_steps: int | None) -> Any:
    """A schedule's step as given, or ``"P%"`` of ``max_steps`` (rounded down)."""
    if not (isinstance(value, str) and value.strip().endswith("%")):
        return value
    try:
        share = float(value.strip()[:-1]) / 100
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a step or a share of the run such as '40%'") from None
    if max_steps is None:
        raise ConfigError(f"{name}: a step given as a share of the run ({value!r}) needs the run's length here")
    if not 0 <= share <= 1:
        raise ConfigError(f"{name}: {value!r} is not a share of the run between 0% and 100%")
    return int(share * max_steps)
