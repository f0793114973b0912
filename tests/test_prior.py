"""Diffusion prior: training lowers the loss, checkpoints round-trip, CFG and SDS behave."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from hoirecon.errors import ConfigError, DataError, HoireconWarning
from hoirecon.priors.diffusion import Denoiser, NetworkConfig, load_checkpoint, save_checkpoint
from hoirecon.registry import build

TINY = NetworkConfig(
    resolution=16,
    block_out_channels=[16, 32],
    down_block_types=["DownBlock2D", "AttnDownBlock2D"],
    norm_num_groups=8,
    categories=["mug", "bottle"],
    num_train_timesteps=100,
)


def batch(n: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand((n, 5, 16, 16), generator=gen) * 2 - 1
    condition = torch.rand((n, 7, 16, 16), generator=gen) * 2 - 1
    return target, condition, torch.tensor([0, 1, 0, 1][:n])


def test_heldout_losses_are_reproducible_and_null_means_unconditional():
    torch.manual_seed(0)
    model = Denoiser(TINY)
    target, condition, ids = batch()
    cond, uncond = model.heldout_losses(target, condition, ids, seed=5)
    again, _ = model.heldout_losses(target, condition, ids, seed=5)
    assert cond.shape == (4,) and torch.equal(cond, again)
    null = torch.full_like(ids, model.null_class)
    cond_null, uncond_null = model.heldout_losses(target, condition, null, seed=5)
    torch.testing.assert_close(cond_null, uncond_null)
    torch.testing.assert_close(uncond_null, uncond)
    # by hand: the epsilon MSE of sample 0 at the drawn timestep and noise
    gen = torch.Generator().manual_seed(5)
    t = torch.randint(0, 100, (4,), generator=gen)
    noise = torch.randn(target.shape, generator=gen)
    with torch.no_grad():
        eps = model(model.add_noise(target, noise, t), condition, t, ids)
    torch.testing.assert_close(cond[0], ((eps[0] - noise[0]) ** 2).mean())


def test_heldout_losses_keep_to_high_t_and_convert_to_x0():
    torch.manual_seed(0)
    model = Denoiser(TINY)
    target, condition, ids = batch()
    eps_mse, _ = model.heldout_losses(target, condition, ids, seed=3, t_min=0.75)
    x0_mse, _ = model.heldout_losses(target, condition, ids, seed=3, t_min=0.75, x0=True)
    # by hand: the same draws from [75, 100); x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar)
    gen = torch.Generator().manual_seed(3)
    t = torch.randint(75, 100, (4,), generator=gen)
    noise = torch.randn(target.shape, generator=gen)
    x_t = model.add_noise(target, noise, t)
    with torch.no_grad():
        eps = model(x_t, condition, t, ids)
    abar = model.abar(t)
    x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
    torch.testing.assert_close(eps_mse, ((eps - noise) ** 2).mean(dim=(1, 2, 3)))
    torch.testing.assert_close(x0_mse, ((x0_hat - target) ** 2).mean(dim=(1, 2, 3)), rtol=1e-4, atol=1e-6)


def test_training_t_min_draws_only_high_timesteps(monkeypatch):
    model = Denoiser(TINY)
    target, condition, ids = batch()
    seen = []
    real = model.raw

    def spy(x_t, cond, t, class_ids):
        seen.append(t.clone())
        return real(x_t, cond, t, class_ids)

    monkeypatch.setattr(model, "raw", spy)
    with torch.no_grad():
        for k in range(20):
            model.training_loss(target, condition, ids, 0.0, torch.Generator().manual_seed(k), t_min=0.75)
        low = torch.cat(seen).min()
        seen.clear()
        for k in range(20):
            model.training_loss(target, condition, ids, 0.0, torch.Generator().manual_seed(k))
    assert low >= 75 and torch.cat(seen).min() < 75


@pytest.mark.slow  # 60 training steps of the denoiser
@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_training_steps_lower_the_loss(prediction_type):
    torch.manual_seed(0)
    model = Denoiser(replace(TINY, prediction_type=prediction_type))
    target, condition, ids = batch()

    def objective() -> float:  # the training loss at fixed timesteps, noise and category
        with torch.no_grad():
            gen = torch.Generator().manual_seed(123)
            return model.training_loss(target, condition, ids, p_uncond=0.0, generator=gen).item()

    before = objective()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(60):
        loss = model.training_loss(target, condition, ids, p_uncond=0.2, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert objective() < 0.85 * before  # random targets: the loss cannot fall far


def test_v_prediction_is_turned_into_noise():
    """A UNet that outputs the true v gives back exactly the noise (and x0 by the usual formula)."""
    model = Denoiser(TINY)
    target, condition, ids = batch()
    t = torch.tensor([1, 30, 60, 90])
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(2))
    x_t = model.add_noise(target, noise, t)
    abar = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    v = abar.sqrt() * noise - (1 - abar).sqrt() * target
    model.raw = lambda *args: v  # the perfect network
    eps = model(x_t, condition, t, ids)
    torch.testing.assert_close(eps, noise, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close((x_t - (1 - abar).sqrt() * eps) / abar.sqrt(), target, atol=1e-3, rtol=1e-3)


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    path = save_checkpoint(model, tmp_path / "prior.safetensors", extra={"steps": 7})
    loaded, extra = load_checkpoint(path)
    assert extra == {"steps": 7} and loaded.cfg == TINY
    target, condition, ids = batch()
    t = torch.tensor([5, 50, 90, 10])
    with torch.no_grad():
        assert torch.allclose(model(target, condition, t, ids), loaded(target, condition, t, ids), atol=1e-6)
    assert not any(p.requires_grad for p in loaded.parameters())  # frozen
    half, _ = load_checkpoint(save_checkpoint(model, tmp_path / "half.safetensors", half=True))
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * path.stat().st_size
    with torch.no_grad():
        assert torch.allclose(model(target, condition, t, ids), half(target, condition, t, ids), atol=1e-2)
    with pytest.raises(DataError, match="prior checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(DataError, match="junk.safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")


def test_guidance_scale_one_is_the_conditional_prediction():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    target, condition, ids = batch()
    t = torch.tensor([3, 30, 60, 99])
    with torch.no_grad():
        conditional = model(target, condition, t, ids)
        unconditional = model(target, condition, t, torch.full_like(ids, model.null_class))
    assert torch.allclose(model.guided_noise(target, condition, t, ids, 1.0), conditional, atol=1e-5)
    assert torch.allclose(model.guided_noise(target, condition, t, ids, 0.0), unconditional, atol=1e-5)


def test_passes_without_gradients_run_a_trace_with_the_same_numbers():
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    target, condition, ids = batch()
    t = torch.tensor([3, 30, 60, 99])
    eager = model.raw(target, condition, t, ids)  # gradients on: the UNet itself
    with torch.no_grad():
        for _ in range(Denoiser.TRACE_AFTER):  # short runs stay eager
            model.raw(target, condition, t, ids)
    assert not model._traced
    model.TRACE_AFTER = 0
    with torch.inference_mode():
        traced = model.raw(target, condition, t, ids)
        again = model.raw(target, condition, t.flip(0), ids)  # another t, the same trace
        two = model.raw(target[:2], condition[:2], t[:2], ids[:2])  # another shape, its own trace
    assert torch.equal(traced, eager.detach()) and len(model._traced) == 2
    assert all(isinstance(trace, torch.jit.ScriptModule) for trace in model._traced.values())  # not eager
    assert torch.equal(again, model.raw(target, condition, t.flip(0), ids).detach())
    assert torch.equal(two, model.raw(target[:2], condition[:2], t[:2], ids[:2]).detach())
    # training moves the weights in place: the traces follow them
    with torch.no_grad():
        model.unet.conv_in.bias.add_(0.1)
        moved = model.raw(target, condition, t, ids)
    assert not torch.allclose(moved, traced) and torch.equal(moved, model.raw(target, condition, t, ids).detach())
    model.double()  # new tensors: the traces are dropped and made anew
    assert not model._traced
    with torch.no_grad():
        double = model.raw(target.double(), condition.double(), t, ids)
    assert double.dtype == torch.float64 and torch.allclose(double.float(), moved, atol=1e-5)


def test_unknown_category_falls_back_to_the_null_class():
    model = Denoiser(TINY)
    with pytest.warns(HoireconWarning, match="unknown category 'Spoon'.*unconditional"):
        ids = model.class_ids(["Mug", "Spoon", "bottle"])
    assert ids.tolist() == [0, model.null_class, 1]


def replayed_denoised(prior, seed: int, target, condition, t_min: float) -> torch.Tensor:
    """The one-step denoised estimate x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar) that the
    prior's ``sds_loss`` saw, replaying its draws from ``seed`` (t in [t_min, 0.98], CFG 1)."""
    prior.generator.manual_seed(seed)
    model, T = prior.model, TINY.num_train_timesteps
    t = torch.randint(int(t_min * T), int(0.98 * T), (len(target),), generator=prior.generator)
    noise = torch.randn(target.shape, generator=prior.generator)
    x_t = model.add_noise(target, noise, t)
    abar = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    with torch.no_grad():
        eps = model(x_t, condition, t, model.class_ids(["mug", "bottle"]))
    return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()


def test_sds_gradient_points_towards_the_denoised_render(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(Denoiser(TINY), tmp_path / "p.safetensors")
    spec = {"type": "diffusion", "checkpoint": str(path), "guidance_scale": 1.0, "weight": 1.0}
    prior = build("prior", {**spec, "weighting": "sds", "t_min": 0.02, "hand_scale": 1.0})  # DiffHOI's SDS
    target, condition, ids = batch(2)
    x0 = target.clone().requires_grad_(True)
    prior.generator.manual_seed(5)
    prior.sds_loss(x0, condition, ["mug", "bottle"], step=0).backward()
    denoised = replayed_denoised(prior, 5, target, condition, t_min=0.02)
    before = (target - denoised).norm()
    after = (target - 0.1 * x0.grad - denoised).norm()
    assert after < before


def test_diffusion_prior_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="nope.safetensors: prior checkpoint not found"):
        build("prior", {"type": "diffusion", "checkpoint": str(tmp_path / "nope.safetensors")})


def test_the_shipped_prior_loads_offline_and_denoises():
    """The default checkpoint: rebuilt from its own metadata, and it beats predicting zero noise."""
    prior = build("prior", {"type": "diffusion"})
    model = prior.model
    assert prior.resolution == 32 and model.cfg.prediction_type == "v_prediction"
    assert "mug" in model.cfg.categories and prior.info["steps"] > 0
    # a disc next to a hand-sized blob: the loss must be well under the trivial predictor's 1.0
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = ((yy - 12) ** 2 + (xx - 16) ** 2 < 36).float()
    target = torch.zeros(1, 5, 32, 32)
    target[:, 0], target[:, 3], target[:, 4] = disc * 2 - 1, -disc, 1 - disc
    condition = torch.zeros(1, 7, 32, 32)
    condition[:, 0] = (((yy - 22) ** 2 + (xx - 16) ** 2) < 30).float() * 2 - 1
    cond, _ = model.heldout_losses(target, condition, model.class_ids(["bowl"]), seed=0)
    assert cond.item() < 0.5


def test_an_unknown_prediction_type_is_a_config_error():
    with pytest.raises(ConfigError, match="network.prediction_type must be epsilon or v_prediction, not 'x0'"):
        Denoiser(replace(TINY, prediction_type="x0"))


def test_hand_guidance_composes_the_three_predictions():
    from hoirecon.priors.channels import no_hand

    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    target, condition, ids = batch()
    t = torch.tensor([3, 30, 60, 99])
    null = torch.full_like(ids, model.null_class)
    with torch.no_grad():
        both = model(target, condition, t, ids)
        no_category = model(target, condition, t, null)
        without_hand = model(target, no_hand(condition), t, ids)
    expected = both + 1.0 * (both - no_category) + 2.0 * (both - without_hand)
    guided = model.guided_noise(target, condition, t, ids, scale=2.0, hand_scale=3.0)
    assert torch.allclose(guided, expected, atol=1e-5)
    assert torch.allclose(model.guided_noise(target, condition, t, ids, 1.0, 1.0), both, atol=1e-5)
    # hand scale 0: the prior with its hand input taken away (the x0u60w2h0 ablation)
    assert torch.allclose(model.guided_noise(target, condition, t, ids, 1.0, 0.0), without_hand, atol=1e-5)
    # category scale 0: the prior with its category taken away (the x0u60w2c0 ablation)
    assert torch.allclose(model.guided_noise(target, condition, t, ids, 0.0, 1.0), no_category, atol=1e-5)


def test_no_hand_is_an_empty_render():
    from hoirecon.priors.channels import FAR, no_hand

    empty = no_hand(torch.zeros(2, 7, 4, 4))
    assert empty.shape == (2, 7, 4, 4)
    assert (empty[:, 0] == -1).all() and (empty[:, 1:4] == 0).all() and (empty[:, 4] == FAR).all()
    assert (empty[:, 5:] == 0).all()


def test_hand_dropout_trains_on_the_empty_hand():
    from hoirecon.priors.channels import no_hand

    torch.manual_seed(0)
    model = Denoiser(TINY)
    target, condition, ids = batch()

    def loss(cond, p_no_hand):
        return model.training_loss(target, cond, ids, 0.0, torch.Generator().manual_seed(4), p_no_hand=p_no_hand)

    with torch.no_grad():
        dropped, empty, kept = loss(condition, 1.0), loss(no_hand(condition), 0.0), loss(condition, 0.0)
    # the same draws: dropping every hand is training on empty hands (the extra draw comes after t, noise)
    assert torch.allclose(dropped, empty) and not torch.allclose(dropped, kept)


def test_t_max_anneals_over_the_whole_run(tmp_path):
    path = save_checkpoint(Denoiser(TINY), tmp_path / "p.safetensors")
    prior = build("prior", {"type": "diffusion", "checkpoint": str(path), "t_max": [0.9, 0.5], "t_min": 0.02})
    prior.on_step(0, 200)
    assert prior.t_max(0) == pytest.approx(0.9) and prior.t_max(100) == pytest.approx(0.7)
    assert prior.t_max(200) == pytest.approx(0.5)
    prior.on_step(0, 2000)  # a longer run stretches it
    assert prior.t_max(1000) == pytest.approx(0.7)
    fixed = build("prior", {"type": "diffusion", "checkpoint": str(path), "t_max": [0, 0.9, 0.5, 100], "t_min": 0.02})
    fixed.on_step(0, 2000)
    assert fixed.t_max(100) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"prior.t_max: \[from, to\]"):
        build("prior", {"type": "diffusion", "checkpoint": str(path), "t_max": [0.5, 0.9]})
    with pytest.raises(ConfigError, match="not above prior.t_min 0.75"):  # the x0 default's t_min
        build("prior", {"type": "diffusion", "checkpoint": str(path), "t_max": [0.98, 0.5]})


def test_framed_views_avoid_the_input_cameras():
    import roma

    from hoirecon.priors.novel_view import framed_novel_view, view_direction

    gen = torch.Generator().manual_seed(0)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.1, 0.1]])
    centre = points.mean(0)
    # input cameras all around one side (z > 0): novel views must come from elsewhere
    cams = centre + 0.5 * torch.nn.functional.normalize(torch.randn(40, 3, generator=gen).abs(), dim=-1)
    away = torch.nn.functional.normalize(cams - centre, dim=-1)
    for _ in range(20):
        T, _ = framed_novel_view(points, 16, gen, avoid=cams, min_angle_deg=30)
        closest = torch.rad2deg(torch.acos((away @ view_direction(T[:3, :3])).max().clamp(-1, 1)))
        assert closest >= 30
    free = [framed_novel_view(points, 16, gen)[0] for _ in range(200)]
    closest = [torch.rad2deg(torch.acos((away @ view_direction(T[:3, :3])).max())) for T in free]
    assert min(closest) < 30  # without the setting, views often look from the input side
    assert roma.is_rotation_matrix(free[0][:3, :3], epsilon=1e-5)


def test_x0_weighting_pulls_towards_the_one_step_denoised_render(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(Denoiser(TINY), tmp_path / "p.safetensors")
    spec = {"type": "diffusion", "checkpoint": str(path), "weight": 1.0, "weighting": "x0", "t_min": 0.5}
    spec["hand_scale"] = 1.0  # the replay has no guidance
    prior = build("prior", spec)
    target, condition, _ = batch(2)
    x0 = target.clone().requires_grad_(True)
    prior.generator.manual_seed(7)
    prior.sds_loss(x0, condition, ["mug", "bottle"], step=0).backward()
    x0_hat = replayed_denoised(prior, 7, target, condition, t_min=0.5)
    assert torch.allclose(x0.grad, target - x0_hat, atol=1e-4)
    # prior.weight scales that pull, and the default is 0.002 (docs/prior.md, "What each change did")
    default = build("prior", {k: v for k, v in spec.items() if k != "weight"})
    x0.grad = None
    default.generator.manual_seed(7)
    default.sds_loss(x0, condition, ["mug", "bottle"], step=0).backward()
    assert torch.allclose(x0.grad, 0.002 * (target - x0_hat), atol=1e-6)
    with pytest.raises(ConfigError, match="'weighting'.*one of sds, x0"):
        build("prior", {**spec, "weighting": "v"})
    # prior.channel_weights scales the pull per channel group: mask, normal (3 channels), depth
    weighted = build("prior", {**spec, "channel_weights": [0.0, 1.0, 0.5]})
    x0.grad = None
    weighted.generator.manual_seed(7)
    weighted.sds_loss(x0, condition, ["mug", "bottle"], step=0).backward()
    scale = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.5]).view(1, 5, 1, 1)
    assert torch.allclose(x0.grad, scale * (target - x0_hat), atol=1e-4)
    with pytest.raises(ConfigError, match="prior.channel_weights"):
        build("prior", {**spec, "channel_weights": [1.0, 1.0]})


def test_the_fit_probe_pulls_take_the_inputs_they_name():
    """benchmarks/prior_fit_probe.py --pulls: each pull's target and reference see the hand and the
    category as named, on the same draws of (t, noise)."""
    import importlib.util
    from pathlib import Path

    from hoirecon.priors.channels import no_hand

    path = Path(__file__).resolve().parents[1] / "benchmarks/prior_fit_probe.py"
    spec = importlib.util.spec_from_file_location("prior_fit_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    x, condition, _ = batch(1)

    def pull(name):
        return probe.expected_pull(model, x, condition, "bottle", 1.0, (0.75, 0.98), 3, seed=4, pull=name)

    # by hand, the unconditional pull: the same three draws, x0_hat without hand and category
    gen, total = torch.Generator().manual_seed(4), torch.zeros_like(x)
    null = torch.tensor([model.null_class])
    for _ in range(3):
        t = torch.randint(75, 98, (1,), generator=gen)
        x_t = model.add_noise(x, torch.randn(x.shape, generator=gen), t)
        with torch.no_grad():
            eps = model(x_t, no_hand(condition), t, null)
        abar = model.abar(t)
        total += (x_t - (1 - abar).sqrt() * eps) / abar.sqrt() - x
    torch.testing.assert_close(pull("unconditional"), total / 3, atol=1e-5, rtol=1e-4)
    # a term is the full pull less the pull without it
    torch.testing.assert_close(pull("hand-term"), pull("full") - pull("no-hand"), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pull("category-term"), pull("full") - pull("no-category"), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(pull("no-hand"), pull("no-category"), atol=1e-3)
