"""Registry: registration, strict configs, lookup errors, plugin loading (mocked and real)."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass, field

import pytest

from hoirecon.errors import ConfigError, PluginError, PluginLoadWarning, RegistryError
from hoirecon.registry import REGISTRY, Registry


@dataclass
class _Dims:
    width: int = 64
    depth: int = 4


class _AnyRole:
    """Throwaway components registered as an sdf and as a prior: the members both contracts need."""

    active, resolution = True, 8

    def sdf(self, x):
        return x.norm(dim=-1)

    def sdf_and_gradient(self, x, create_graph=True):
        return self.sdf(x), x / x.norm(dim=-1, keepdim=True)

    def sds_loss(self, object_channels, hand_condition, categories, step):
        return object_channels.sum() * 0.0


class Widget(_AnyRole):
    @dataclass
    class Config:
        size: int = 3
        scale: float = 1.0
        dims: _Dims = field(default_factory=_Dims)

    def __init__(self, cfg: Config, extra: str = ""):
        self.cfg = cfg
        self.extra = extra


class Gadget(_AnyRole):
    @dataclass
    class Config:
        pass

    def __init__(self, cfg: Config):
        self.cfg = cfg


def make_registry(**kwargs) -> Registry:
    kwargs.setdefault("entry_point_group", None)
    registry = Registry(**kwargs)
    registry.add("sdf", "widget", Widget)
    return registry


def test_build_validates_and_passes_runtime_kwargs():
    registry = make_registry()
    obj = registry.build("sdf", {"type": "widget", "size": 5, "dims": {"width": 8}}, extra="x")
    assert isinstance(obj, Widget)
    assert obj.cfg.size == 5 and obj.cfg.scale == 1.0
    assert obj.cfg.dims == _Dims(width=8, depth=4)
    assert obj.extra == "x"
    assert registry.build("sdf", "widget").cfg.size == 3  # a bare name means all defaults


def test_unknown_key_names_key_and_component():
    registry = make_registry()
    with pytest.raises(ConfigError) as info:
        registry.build("sdf", {"type": "widget", "sise": 5}, where="object.sdf")
    message = str(info.value)
    assert "'object.sdf.sise'" in message and "Widget" in message and "size, scale, dims" in message


def test_nested_unknown_key_and_bad_type_are_errors():
    registry = make_registry()
    with pytest.raises(ConfigError, match="depht"):
        registry.build("sdf", {"type": "widget", "dims": {"depht": 2}})
    with pytest.raises(ConfigError, match="'size'.*Widget"):
        registry.build("sdf", {"type": "widget", "size": "three"})


def test_missing_type_and_unknown_role():
    registry = make_registry()
    with pytest.raises(RegistryError, match="object.sdf: missing 'type'"):
        registry.build("sdf", {"size": 2}, where="object.sdf")
    with pytest.raises(RegistryError, match="unknown role 'shape'"):
        registry.add("shape", "x", Widget)


def test_duplicate_name_is_an_error_but_the_same_class_is_idempotent():
    registry = make_registry()
    registry.add("sdf", "widget", Widget)  # same object again: fine
    with pytest.raises(RegistryError, match="duplicate sdf name 'widget'.*Gadget.*Widget"):
        registry.add("sdf", "widget", Gadget)
    registry.add("prior", "widget", Gadget)  # names are per role


def test_component_needs_a_dataclass_config():
    class NoConfig:
        pass

    with pytest.raises(RegistryError, match="needs a nested dataclass 'Config'"):
        make_registry().add("sdf", "bad", NoConfig)


def test_unknown_name_lists_known_names():
    registry = make_registry()
    registry.add("sdf", "gadget", Gadget)
    with pytest.raises(RegistryError) as info:
        registry.get("sdf", "hashgird", where="object.sdf")
    assert str(info.value) == "object.sdf: unknown sdf 'hashgird'; known sdf names: gadget, widget"
    assert "hoirecon list" in info.value.hint


class FakeDist:
    name = "hoirecon-fake"


class FakeEntryPoint:
    def __init__(self, name: str, value: str, loader):
        self.name, self.value, self._loader, self.dist = name, value, loader, FakeDist()

    def load(self):
        return self._loader()


def test_entry_point_plugins_load_lazily_with_their_source():
    calls = []

    def loader():
        calls.append(1)
        registry.add("prior", "fancy", Gadget)
        return types.ModuleType("fake_plugin")

    registry = make_registry(
        entry_point_group="hoirecon.plugins",
        find_entry_points=lambda group: [FakeEntryPoint("fake", "fake_plugin", loader)],
    )
    assert registry.names("prior") == []  # nothing loaded by a plain listing
    assert calls == []
    entry = registry.get("prior", "fancy")  # a miss loads the entry points
    assert calls == [1]
    assert entry.source == "plugin hoirecon-fake (fake = fake_plugin)"
    source = registry.get("sdf", "widget").source
    assert source.startswith("module ") and source.endswith("test_registry")


def test_entry_point_may_name_a_register_function():
    def setup():  # what `pkg:setup` would name
        registry.add("prior", "p", Gadget)

    registry = make_registry(
        entry_point_group="g", find_entry_points=lambda group: [FakeEntryPoint("f", "pkg:setup", lambda: setup)]
    )
    assert registry.get("prior", "p").obj is Gadget


def test_broken_plugin_warns_and_is_named_in_lookup_errors():
    def broken():
        raise ImportError("No module named 'missing_dependency'")

    registry = make_registry(
        entry_point_group="hoirecon.plugins",
        find_entry_points=lambda group: [FakeEntryPoint("broken", "broken_pkg", broken)],
    )
    with pytest.warns(PluginLoadWarning, match="broken_pkg.*missing_dependency"):
        with pytest.raises(RegistryError) as info:
            registry.get("prior", "diffusion")
    message = str(info.value)
    assert "plugins that failed to load" in message
    assert "hoirecon-fake (broken = broken_pkg): ImportError: No module named 'missing_dependency'" in message
    assert registry.failed_plugins


def test_config_plugin_modules_must_import():
    registry = make_registry()
    with pytest.raises(PluginError, match="plugin module 'no_such_plugin_xyz' failed to load: ModuleNotFoundError"):
        registry.load_modules(["no_such_plugin_xyz"])


def test_config_plugin_module_registers_with_its_source(tmp_path, monkeypatch):
    (tmp_path / "my_local_plugin.py").write_text(
        "from dataclasses import dataclass\n"
        "from hoirecon.registry import register\n"
        "@register('prior', 'local-test-prior')\n"
        "class P:\n"
        "    @dataclass\n"
        "    class Config:\n"
        "        k: int = 1\n"
        "    active, resolution = True, 8\n"
        "    def __init__(self, cfg):\n"
        "        self.cfg = cfg\n"
        "    def sds_loss(self, object_channels, hand_condition, categories, step):\n"
        "        return object_channels.sum() * 0.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    REGISTRY.load_modules(["my_local_plugin"])
    entry = REGISTRY.get("prior", "local-test-prior")
    assert entry.source == "plugin module my_local_plugin"
    assert REGISTRY.build("prior", {"type": "local-test-prior", "k": 4}).cfg.k == 4


def test_real_example_plugin_through_its_entry_point():
    # `make test` installs plugins/hoirecon-example; the registry finds it through its entry point.
    entry = REGISTRY.get("prior", "mask-area")
    assert entry.source.startswith("plugin hoirecon-example")
    prior = REGISTRY.build("prior", {"type": "mask-area", "target_fraction": 0.25})
    import torch

    obj = torch.full((2, 5, 4, 4), -1.0)
    obj[:, 0, :2, :2] = 1.0  # coverage 4/16 = 0.25 in both images -> zero loss
    hand = torch.zeros(2, 7, 4, 4)
    assert prior.sds_loss(obj, hand, ["mug", "mug"], step=0).item() == pytest.approx(0.0)
    obj[:, 0] = 1.0  # full coverage: (1 - 0.25)^2
    assert prior.sds_loss(obj, hand, ["mug", "mug"], step=0).item() == pytest.approx(0.5625)


@pytest.mark.slow  # a fresh process
def test_importing_hoirecon_loads_no_components_or_plugins():
    code = (
        "import sys, hoirecon, hoirecon.registry, hoirecon.config\n"
        "loaded = [m for m in sys.modules if m.startswith(('hoirecon.priors', 'hoirecon_example', 'lightning'))]\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("role", "lacking", "missing"),
    [
        ("sdf", "sdf_and_gradient", "sdf_and_gradient"),
        ("prior", "sds_loss", "sds_loss"),
        ("estimator", None, "sample"),
        ("clip_format", None, "priority"),
        ("initializer", None, "initialize"),
        ("object_generator", None, "generate"),
        ("renderer", None, "forward"),
    ],
)
def test_registration_checks_the_role_contract(role, lacking, missing):
    """A class that lacks a member of its role's contract is refused at registration, naming it."""
    attrs = {"Config": dataclass(type("Config", (), {}))}
    bases = (_AnyRole,) if lacking else ()
    if lacking:
        attrs[lacking] = None  # shadows the base's method: not callable
    cls = type("Broken", bases, attrs)
    with pytest.raises(RegistryError) as err:
        make_registry().add(role, "broken", cls)
    message = str(err.value)
    assert f"lacks '{missing}'" in message and "\n" not in message and f"{role} 'broken'" in message


def test_every_builtin_component_meets_its_contract():
    from hoirecon.contracts import CONTRACTS, missing_member

    for role in CONTRACTS:
        for entry in REGISTRY.entries(role):
            assert missing_member(entry.obj, role) is None, (role, entry.name)


def test_clip_formats_are_detected_by_declared_priority(tmp_path):
    """A folder that two layouts accept goes to the one with the higher priority, whatever the names."""
    from hoirecon.data.load import detect_format

    (tmp_path / "meta.yaml").write_text("category: mug\n")  # hoirecon's sign ...
    (tmp_path / "image").mkdir()  # ... and DiffHOI's
    (tmp_path / "cameras_hoi.npz").write_bytes(b"")
    priorities = {e.name: e.obj.priority for e in REGISTRY.entries("clip_format")}
    assert priorities["diffhoi"] > priorities["hoirecon"]
    assert detect_format(tmp_path) == "diffhoi"
    (tmp_path / "cameras_hoi.npz").unlink()
    assert detect_format(tmp_path) == "hoirecon"
