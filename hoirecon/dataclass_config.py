"""One mapping validated into one dataclass, strictly: unknown keys and bad types are one-line errors.

The common ground of ``hoirecon.registry`` (a component's section into its ``Config``) and
``hoirecon.config`` (a whole run config into its schema); it imports neither, so neither needs the
other to validate (docs/architecture.md, section Layers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
            raise ConfigError(
                f"unknown key '{prefix}{key}' for {component}; known keys: {', '.join(known) or '(none)'}"
            )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
        if isinstance(exc, ConfigKeyError) and key:
            message = omegaconf_message(exc)
            suggestion = message[message.find("Did you mean") :] if "Did you mean" in message else ""
            raise ConfigError(f"unknown key '{prefix}{key}' for {component}. {suggestion}".strip()) from None
        where_key = f"'{prefix}{key}' " if key else ""
        raise ConfigError(f"bad value {where_key}for {component}: {omegaconf_message(exc)}") from None


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
