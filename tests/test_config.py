"""Configs: base includes, overrides, type-change replacement, validation, schedules, round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import yaml

from hoirecon.config import Schedule, compose, load_layers, parse_overrides, save_config, validate
from hoirecon.dataclass_config import make_config
from hoirecon.errors import ConfigError
from hoirecon.registry import Registry


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_includes_merge_in_order_relative_to_each_file(tmp_path):
    write(tmp_path / "common" / "root.yaml", "a: 1\nnested: {x: 1, y: 2}\nlist: [1, 2, 3]\n")
    write(tmp_path / "common" / "mid.yaml", "base: root.yaml\nb: 2\nnested: {y: 20}\n")
    write(tmp_path / "other.yaml", "c: 3\na: 10\n")
    top_text = "base: [../common/mid.yaml, ../other.yaml]\nlist: [9]\nnested: {z: 3}\n"
    top = write(tmp_path / "runs" / "top.yaml", top_text)
    tree = load_layers(top)
    assert tree == {"a": 10, "nested": {"x": 1, "y": 20, "z": 3}, "list": [9], "b": 2, "c": 3}


def test_include_errors_name_the_file(tmp_path):
    a = write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_layers(a)
    c = write(tmp_path / "c.yaml", "base: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: base file 'missing\.yaml' not found"):
        load_layers(c)
    d = write(tmp_path / "d.yaml", "a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match=r"d\.yaml: invalid YAML \(line \d+, column \d+\)"):
        load_layers(d)
    e = write(tmp_path / "e.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_layers(e)
    with pytest.raises(ConfigError, match="config file not found"):
        load_layers(tmp_path / "nope.yaml")


def test_overrides_parse_yaml_values_and_nest():
    tree = parse_overrides(["a.b=1", "a.c=0.5", "d=[1, 2]", "e=true", "f=hello", "a.g=null", "h="])
    assert tree == {"a": {"b": 1, "c": 0.5, "g": None}, "d": [1, 2], "e": True, "f": "hello", "h": ""}
    for bad in ["novalue", "=3", "a..b=1", ".a=1"]:
        with pytest.raises(ConfigError, match="dotted.key=value"):
            parse_overrides([bad])


def test_changing_a_component_type_replaces_its_section(tmp_path):
    path = write(tmp_path / "c.yaml", "object:\n  sdf: {type: mlp, n_freqs: 6}\n  keep: 1\n")
    cfg = compose(path, ["object.sdf.type=hashgrid", "object.sdf.levels=8"])
    assert cfg.object.sdf == {"type": "hashgrid", "levels": 8}
    assert cfg.object.keep == 1
    cfg = compose(path, ["object.sdf.n_freqs=4"])  # same type: merged
    assert cfg.object.sdf == {"type": "mlp", "n_freqs": 4}


def test_interpolations_are_resolved(tmp_path):
    path = write(tmp_path / "c.yaml", "steps: 100\nwarmup: ${steps}\n")
    assert compose(path)["warmup"] == 100


@dataclass
class Trainer:
    max_steps: int = 10
    lr: float = 1e-3


@dataclass
class Schema:
    NAME: ClassVar[str] = "test"
    COMPONENTS: ClassVar[dict[str, str]] = {"model.sdf": "sdf"}
    plugins: list[str] = field(default_factory=list)
    name: str = "x"
    model: dict[str, Any] = field(default_factory=lambda: {"sdf": {"type": "thing"}})
    trainer: Trainer = field(default_factory=Trainer)


class Thing:
    @dataclass
    class Config:
        width: int = 4

    def __init__(self, cfg):
        self.cfg = cfg

    def sdf(self, x):  # the sdf contract (only its names are checked at registration)
        return x.norm(dim=-1)

    def sdf_and_gradient(self, x, create_graph=True):
        return self.sdf(x), x


def _registry() -> Registry:
    registry = Registry(entry_point_group=None)
    registry.add("sdf", "thing", Thing)
    return registry


def test_validate_checks_schema_and_component_sections(tmp_path):
    path = write(tmp_path / "c.yaml", "name: run\nmodel: {sdf: {type: thing, width: 8}}\ntrainer: {max_steps: 5}\n")
    config = validate(compose(path), Schema, _registry())
    assert config.name == "run" and config.trainer == Trainer(5, 1e-3)
    with pytest.raises(ConfigError, match="unknown key 'foo' for the test config"):
        validate(compose(path, ["foo.bar=1"]), Schema, _registry())
    with pytest.raises(ConfigError, match=r"unknown key 'trainer\.lrr'"):
        validate(compose(path, ["trainer.lrr=1"]), Schema, _registry())
    with pytest.raises(ConfigError, match=r"unknown key 'model\.sdf\.height' for sdf 'thing'"):
        validate(compose(path, ["model.sdf.height=1"]), Schema, _registry())
    with pytest.raises(ConfigError, match=r"'trainer\.max_steps'.*could not be converted to Integer"):
        validate(compose(path, ["trainer.max_steps=many"]), Schema, _registry())
    # several bad types: all named on one line, not only the first
    with pytest.raises(ConfigError) as caught:
        validate(compose(path, ["trainer.max_steps=many", "trainer.lr=fast"]), Schema, _registry())
    message = str(caught.value)
    assert "\n" not in message and "(and 1 more: " in message
    assert "'trainer.max_steps': Value 'many'" in message and "'trainer.lr': Value 'fast'" in message
    validate({}, Schema, _registry())  # defaults alone are valid


def test_make_config_requires_mandatory_values():
    from omegaconf import MISSING

    @dataclass
    class Needs:
        path: str = MISSING

    with pytest.raises(ConfigError, match="path"):
        make_config(Needs, {}, component="needs")
    assert make_config(Needs, {"path": "a"}, component="needs").path == "a"


def test_saved_config_is_plain_yaml_and_round_trips(tmp_path):
    path = write(tmp_path / "c.yaml", "base: b.yaml\na: {b: 1.5, c: [1, 2]}\nref: ${a.b}\n")
    write(tmp_path / "b.yaml", "z: base\n")
    cfg = compose(path, ["a.d=x"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    text = out.read_text()
    assert "!!python" not in text and "${" not in text
    assert yaml.safe_load(text) == {"z": "base", "a": {"b": 1.5, "c": [1, 2], "d": "x"}, "ref": 1.5}
    again = compose(out, ["a.b=2"])  # resuming = the saved file + new overrides
    assert again.a.b == 2 and again.a.d == "x" and again.ref == 1.5
    assert not list((tmp_path / "run").glob("*.tmp*"))


def test_schedule_values():
    s = Schedule.parse([100, 0.3, 0.8, 200])
    assert [s(0), s(100), s(150), s(200), s(1000)] == pytest.approx([0.3, 0.3, 0.55, 0.8, 0.8])
    c = Schedule.parse(4)
    assert c(0) == 4.0 and c(10**6) == 4.0
    jump = Schedule.parse([10, 1.0, 2.0, 10])
    assert jump(9) == 1.0 and jump(10) == 1.0 and jump(11) == 2.0
    # steps as shares of the run: the same schedule over 800 and 1500 steps
    share = ["30%", 0, 1.0, "60%"]
    assert Schedule.parse(share, max_steps=800) == Schedule(240, 0.0, 1.0, 480)
    assert Schedule.parse(share, max_steps=1500) == Schedule(450, 0.0, 1.0, 900)
    with pytest.raises(ConfigError, match="loss.contact: a step given as a share of the run"):
        Schedule.parse(share, name="loss.contact")
    for bad in (["x%", 0, 1, 10], ["120%", 0, 1, "130%"]):
        with pytest.raises(ConfigError, match="loss.contact: .* share of the run"):
            Schedule.parse(bad, name="loss.contact", max_steps=100)


@pytest.mark.parametrize("bad", [[1, 2, 3], [10, 0.1, 0.2, 5], [0.5, 1, 2, 3], "fast", True, [0, 1, float("nan"), 3]])
def test_schedule_rejects_malformed_values(bad):
    with pytest.raises(ConfigError, match="w_sds"):
        Schedule.parse(bad, name="w_sds")
