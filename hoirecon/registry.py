"""Plugin registry: one namespace of named components per role.

A component is a class with a nested dataclass ``Config`` whose constructor takes that config
(plus runtime keyword arguments such as a device or another component)::

    from hoirecon.registry import register, build

    @register("sdf", "mlp")
    class MLPSDF(nn.Module):
        @dataclass
        class Config:
            hidden: int = 64

        def __init__(self, cfg: Config): ...

    sdf = build("sdf", {"type": "mlp", "hidden": 128})

Built-in components live in the modules of ``BUILTIN_MODULES`` and are imported on first lookup,
never at ``import hoirecon``. Plugins register through the entry-point group ``hoirecon.plugins``
(loaded on the first miss, or eagerly by the CLI) or through a config's ``plugins: [module.path]``.
A plugin that fails to load is recorded with its exception and reported: by a warning when it
fails, by ``hoirecon list``, and in the error of any lookup that misses.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, is_dataclass
from types import ModuleType
from typing import Any

from hoirecon.contracts import CONTRACTS, missing_member
from hoirecon.errors import PluginError, PluginLoadWarning, RegistryError

ROLES: tuple[str, ...] = (
    "sdf",
    "renderer",
    "estimator",
    "prior",
    "initializer",
    "hand_model",
    "clip_format",
    "object_generator",
)

# The one explicit list of modules that register built-in components.
BUILTIN_MODULES: tuple[str, ...] = (
    "hoirecon.priors.none",
    "hoirecon.hand.model",
    "hoirecon.sdf.mlp",
    "hoirecon.sdf.hashgrid",
    "hoirecon.render.volume",
    "hoirecon.render.sampling",
    "hoirecon.priors.diffusion",
    "hoirecon.data.formats.hoirecon",
    "hoirecon.data.formats.diffhoi",
    "hoirecon.data.formats.folder",
    "hoirecon.data.formats.hoi4d",
    "hoirecon.data.synth.objects",
    "hoirecon.data.synth.mesh_objects",
    "hoirecon.data.synth.library",
    "hoirecon.init.provided",
    "hoirecon.init.frankmocap",
    "hoirecon.init.mediapipe",
)

ENTRY_POINT_GROUP = "hoirecon.plugins"


@dataclass(frozen=True)
class Entry:
    """One registered component: where it came from and what builds it."""

    role: str
    name: str
    obj: type
    source: str  # "built-in", "plugin <dist> (<entry point>)" or "module <name>"


def _find_entry_points(group: str) -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=group)


class Registry:
    """Components by role and name, with lazy loading of built-ins and plugins."""

    def __init__(
        self,
        builtin_modules: Iterable[str] = (),
        entry_point_group: str | None = ENTRY_POINT_GROUP,
        find_entry_points: Callable[[str], Iterable[Any]] = _find_entry_points,
    ):
        self._entries: dict[str, dict[str, Entry]] = {role: {} for role in ROLES}
        self._builtin_modules = tuple(builtin_modules)
        self._entry_point_group = entry_point_group
        self._find_entry_points = find_entry_points
        self._builtins_loaded = False
        self._entry_points_loaded = False
        self._loading_source: str | None = None
        self.failed_plugins: dict[str, str] = {}  # plugin label -> "ExcType: message"

    # -- registration ---------------------------------------------------------------------------

    def register(self, role: str, name: str) -> Callable[[type], type]:
        """Class decorator: ``@registry.register("sdf", "mlp")``."""

        def decorator(obj: type) -> type:
            self.add(role, name, obj)
            return obj

        return decorator

    def add(self, role: str, name: str, obj: type, source: str | None = None) -> None:
        if role not in self._entries:
            raise RegistryError(f"unknown role '{role}' for component '{name}'; roles: {', '.join(ROLES)}")
        config_cls = getattr(obj, "Config", None)
        if not (isinstance(config_cls, type) and is_dataclass(config_cls)):
            raise RegistryError(f"{role} '{name}' ({_qualname(obj)}) needs a nested dataclass 'Config'")
        missing = missing_member(obj, role)
        if missing is not None:
            raise RegistryError(
                f"{role} '{name}' ({_qualname(obj)}) lacks '{missing}', which the {role} contract needs "
                f"(hoirecon.contracts.{CONTRACTS[role].__name__})"
            )
        existing = self._entries[role].get(name)
        if existing is not None:
            if existing.obj is obj:
                return  # the same class seen twice (e.g. a module imported under two names)
            raise RegistryError(
                f"duplicate {role} name '{name}': {_qualname(obj)} clashes with "
                f"{_qualname(existing.obj)} from {existing.source}"
            )
        if source is None:
            source = self._loading_source or _source_of(obj)
        self._entries[role][name] = Entry(role, name, obj, source)

    # -- loading --------------------------------------------------------------------------------

    def load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)  # a failure here is our bug: let it raise

    def load_entry_points(self) -> None:
        """Import every plugin of the entry-point group once; record (and warn about) failures."""
        if self._entry_points_loaded or self._entry_point_group is None:
            return
        self._entry_points_loaded = True
        for ep in self._find_entry_points(self._entry_point_group):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            label = f"{dist} ({ep.name} = {ep.value})"
            self._loading_source = f"plugin {label}"
            try:
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, (ModuleType, type)):
                    loaded()  # an entry point may name a register() function instead of a module
            except Exception as exc:  # noqa: BLE001 - any plugin failure is recorded, never swallowed
                self.failed_plugins[label] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"hoirecon plugin {label} failed to load: {type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
            finally:
                self._loading_source = None

    def load_modules(self, modules: Iterable[str]) -> None:
        """Import plugin modules a config names (``plugins: [...]``); a failure is an error."""
        for module in modules:
            self._loading_source = f"plugin module {module}"
            try:
                importlib.import_module(module)
            except Exception as exc:  # noqa: BLE001
                raise PluginError(
                    f"plugin module '{module}' failed to load: {type(exc).__name__}: {exc}",
                    hint="check the config's 'plugins:' list and that the plugin is installed",
                ) from exc
            finally:
                self._loading_source = None

    def load_all(self, modules: Iterable[str] = ()) -> None:
        self.load_builtins()
        self.load_entry_points()
        self.load_modules(modules)

    # -- lookup ---------------------------------------------------------------------------------

    def get(self, role: str, name: str, where: str | None = None) -> Entry:
        if role not in self._entries:
            raise RegistryError(f"unknown role '{role}'; roles: {', '.join(ROLES)}")
        self.load_builtins()
        if name not in self._entries[role]:
            self.load_entry_points()
        entry = self._entries[role].get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries[role])) or "(none)"
            prefix = f"{where}: " if where else ""
            message = f"{prefix}unknown {role} '{name}'; known {role} names: {known}"
            if self.failed_plugins:
                failed = "; ".join(f"{label}: {err}" for label, err in self.failed_plugins.items())
                message += f"; plugins that failed to load: {failed}"
            raise RegistryError(message, hint="`hoirecon list` shows every component and its source")
        return entry

    def names(self, role: str) -> list[str]:
        self.load_builtins()
        return sorted(self._entries[role])

    def entries(self, role: str) -> list[Entry]:
        self.load_builtins()
        return [self._entries[role][name] for name in sorted(self._entries[role])]

    def config(self, role: str, cfg: Mapping[str, Any] | str, where: str | None = None) -> Any:
        """Validate a component section (``{"type": name, **fields}``) into its Config instance."""
        from hoirecon.dataclass_config import make_config  # local: omegaconf loads when a config is validated

        name, values = _split_type(role, cfg, where)
        entry = self.get(role, name, where)
        label = f"{role} '{name}' ({_qualname(entry.obj)})"
        return make_config(entry.obj.Config, values, component=label, where=where)

    def build(self, role: str, cfg: Mapping[str, Any] | str, where: str | None = None, **kwargs: Any) -> Any:
        """Validate ``cfg`` and instantiate the component: ``cls(config, **kwargs)``."""
        config = self.config(role, cfg, where)
        name, _ = _split_type(role, cfg, where)
        return self.get(role, name).obj(config, **kwargs)


def _split_type(role: str, cfg: Mapping[str, Any] | str, where: str | None) -> tuple[str, dict[str, Any]]:
    if isinstance(cfg, str):
        return cfg, {}
    if not isinstance(cfg, Mapping):
        raise RegistryError(f"{where or role}: expected a mapping with a 'type' key, got {type(cfg).__name__}")
    values = dict(cfg)
    name = values.pop("type", None)
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{where or role}: missing 'type' (the {role} to use)")
    return name, values


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def _source_of(obj: Any) -> str:
    module = obj.__module__
    return "built-in" if module == "hoirecon" or module.startswith("hoirecon.") else f"module {module}"


# The process-wide registry and its module-level shortcuts.
REGISTRY = Registry(BUILTIN_MODULES)
register = REGISTRY.register
build = REGISTRY.build
names = REGISTRY.names
get = REGISTRY.get


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Load built-ins, every installed entry-point plugin, and the named plugin modules."""
    REGISTRY.load_all(modules)
