"""The second first-party plugin: the ``smooth-surface`` prior (plugins/hoirecon-smooth)."""

from __future__ import annotations

import torch

from hoirecon.registry import REGISTRY


def test_registered_through_the_entry_point():
    REGISTRY.load_all()
    entry = REGISTRY.get("prior", "smooth-surface")
    assert entry.source == "plugin hoirecon-smooth (smooth = hoirecon_smooth)"


def test_masked_tv_of_a_ramp():
    from hoirecon_smooth import masked_tv

    h, w = 4, 5
    image = (torch.arange(w, dtype=torch.float32) * 0.1).expand(1, 1, h, w)
    mask = torch.ones(1, h, w)
    expected = 0.1 * h * (w - 1) / (h * (w - 1) + (h - 1) * w)
    assert torch.isclose(masked_tv(image, mask), torch.tensor(expected))
    # pairs that leave the mask do not count
    mask[:, :, 2:] = 0
    assert torch.isclose(masked_tv(image, mask), torch.tensor(0.1 * h * 1 / (h * 1 + (h - 1) * 2)))


def test_descending_the_loss_smooths_the_render():
    prior = REGISTRY.build("prior", {"type": "smooth-surface", "resolution": 8})
    gen = torch.Generator().manual_seed(0)
    channels = torch.zeros(1, 5, 8, 8)
    channels[:, 0] = 1.0  # solid object everywhere
    channels[:, 1:] = torch.randn(1, 4, 8, 8, generator=gen)
    channels.requires_grad_(True)
    condition = torch.zeros(1, 7, 8, 8)
    before = prior.sds_loss(channels, condition, ["mug"], 0)
    before.backward()
    with torch.no_grad():
        after = prior.sds_loss(channels - 2.0 * channels.grad, condition, ["mug"], 0)
    assert after < before
