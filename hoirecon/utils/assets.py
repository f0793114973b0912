"""Where the files shipped inside the package are (read by the prior, the hand and `hoirecon doctor`)."""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
#: The default diffusion prior: the second one (trained with hand dropout on box-framed renders;
#: docs/prior.md). The first, prior_diffusion_32.safetensors, stays for comparison (prior.checkpoint=...).
DEFAULT_PRIOR_CHECKPOINT = ASSETS_DIR / "prior_diffusion_32_v2.safetensors"
