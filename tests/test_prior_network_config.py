"""The train-prior `network:` section: a plain mapping in the schema, validated by the prior training."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoirecon.cli import main
from hoirecon.config import compose, validate
from hoirecon.errors import ConfigError
from hoirecon.priors.diffusion import NetworkConfig
from hoirecon.schema import PriorTrainConfig
from hoirecon.systems.prior import network_config

REPO = Path(__file__).resolve().parents[1]
PRIOR_CONFIGS = sorted((REPO / "configs" / "prior").glob("*.yaml"))


@pytest.mark.parametrize("path", PRIOR_CONFIGS, ids=[p.stem for p in PRIOR_CONFIGS])
def test_every_prior_config_has_a_valid_network(path):
    network = network_config(validate(compose(path), PriorTrainConfig).network)
    assert isinstance(network, NetworkConfig) and network.resolution in (32, 64)


def test_a_bad_network_key_is_one_line_naming_it(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^unknown key 'network\.resolutoin' for the prior network"):
        network_config({"resolutoin": 16})
    with pytest.raises(ConfigError, match=r"^bad value 'network\.resolution' for the prior network"):
        network_config({"resolution": "big"})
    args = ["--config", str(PRIOR_CONFIGS[0]), f"run_dir={tmp_path / 'run'}", "network.resolutoin=16"]
    code = main(["train-prior", *args])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: unknown key 'network.resolutoin' for the prior network")
    assert len(err.strip().splitlines()) == 1
