"""Schemas of the run configs, one dataclass per command that reads a config.

Fixed sections are dataclasses (validated by OmegaConf: unknown keys and bad types are errors);
component sections are plain mappings with a ``type`` and are validated against that
component's own ``Config`` through the registry. ``COMPONENTS`` lists them by dotted path.
These schemas grow with the commands that use them; see docs/config.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class TrainerSection:
    """Optimisation loop settings shared by every Lightning run."""

    max_steps: int = 2000
    seed: int = 0
    #: torch intra-op threads; 0 uses every core.
    threads: int = 0
    log_every_n_steps: int = 50
    checkpoint_every_n_steps: int = 500
    #: "auto" picks CUDA when present, else CPU.
    accelerator: str = "auto"
    progress_bar: bool = True


@dataclass
class FitConfig:
    """``hoirecon fit``: reconstruct one clip."""

    NAME: ClassVar[str] = "fit"
    COMPONENTS: ClassVar[dict[str, str]] = {"prior": "prior"}

    #: Extra plugin modules to import before the components are built.
    plugins: list[str] = field(default_factory=list)
    #: Clip folder to fit.
    clip: str = ""
    #: Where outputs go; the resolved config is saved there as config.yaml.
    run_dir: str = "runs/fit"
    #: Object category; empty = the clip's own.
    category: str = ""
    prior: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    trainer: TrainerSection = field(default_factory=TrainerSection)


#: Which schema validates the files of each folder under configs/.
SCHEMAS: dict[str, type] = {"fit": FitConfig}
