"""Schemas of the run configs, one dataclass per command that reads a config.

Fixed sections are dataclasses (validated by OmegaConf: unknown keys and bad types are errors);
component sections are plain mappings with a ``type`` and are validated against that
component's own ``Config`` through the registry. ``COMPONENTS`` lists them by dotted path.
These schemas grow with the commands that use them; see docs/config.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from hoirecon.dataclass_config import ranged


@dataclass
class TrainerSection:
    """Optimisation loop settings shared by every Lightning run."""

    max_steps: int = ranged(2000, at_least=1)
    seed: int = ranged(0, at_least=0)
    #: torch intra-op threads; 0 uses every core.
    threads: int = ranged(0, at_least=0)
    log_every_n_steps: int = ranged(50, at_least=1)
    #: 0: only last.ckpt.
    checkpoint_every_n_steps: int = ranged(500, at_least=0)
    #: last.ckpt also every this many minutes of training (0: by steps only); and always on Ctrl-C.
    checkpoint_every_minutes: float = ranged(10.0, at_least=0)
    #: "cpu" unless asked: "auto" picks CUDA when present, "gpu" insists on it (`hoirecon doctor` shows which).
    accelerator: str = ranged("cpu", choices=("cpu", "auto", "gpu", "cuda"))
    #: Processes (CPU) or GPUs; with more than one, use strategy "ddp".
    devices: int = ranged(1, at_least=1)
    #: Machines, each running ``devices`` processes (strategy "ddp"; every node runs the same command
    #: with MASTER_ADDR, MASTER_PORT and NODE_RANK set, or under SLURM/torchrun: docs/prior.md).
    num_nodes: int = ranged(1, at_least=1)
    strategy: str = "auto"
    progress_bar: bool = True


@dataclass
class ObjectSection:
    """The object: its SDF backbone, how it is volume-rendered, where rays are sampled."""

    sdf: dict[str, Any] = field(default_factory=lambda: {"type": "mlp"})
    renderer: dict[str, Any] = field(default_factory=lambda: {"type": "volsdf"})
    estimator: dict[str, Any] = field(default_factory=lambda: {"type": "occgrid"})
    #: Marching-cubes grid size for the exported mesh.
    #: (Below 16 cells the grid misses most objects' surface.)
    export_resolution: int = ranged(128, at_least=16)


@dataclass
class GroupSection:
    """One parameter group of the fit: on or off, and its learning rate."""

    lr: float = ranged(5e-4, at_least=0)
    enabled: bool = True


def _group(lr: float, enabled: bool = True):
    return field(default_factory=lambda: GroupSection(lr, enabled))


@dataclass
class OptimSection:
    """AdamW per parameter group, learning rates decaying exponentially to ``final_lr_ratio``."""

    sdf: GroupSection = _group(5e-4)
    #: The renderer's surface width (VolSDF beta, NeuS s).
    renderer: GroupSection = _group(5e-4)
    hand_pose: GroupSection = _group(5e-4)
    betas: GroupSection = _group(5e-4)
    hand_from_obj: GroupSection = _group(1e-5)
    cameras: GroupSection = _group(5e-4)
    intrinsics: GroupSection = _group(1e-5)
    #: One T_hand_from_obj for the clip (a rigid grasp) or one per frame.
    hand_from_obj_shared: bool = True
    weight_decay: float = ranged(0.01, at_least=0)
    final_lr_ratio: float = ranged(0.1, above=0)
    #: Gradient-norm clipping (0: none).
    grad_clip: float = ranged(100.0, at_least=0)


@dataclass
class LossSection:
    """Loss weights; each is a number or a schedule [start_step, v0, v1, end_step] (a step may be a
    share of the run, "40%")."""

    mask: Any = 10.0
    hand_mask: Any = 1.0
    contour: Any = 10.0
    eikonal: Any = 0.1
    temporal: Any = 100.0
    joint_limits: Any = 0.0
    #: Hand vertices inside the object, pushed out once the masks have shaped the object (docs/fit.md).
    penetration: Any = field(default_factory=lambda: ["30%", 0.0, 1.0, "60%"])
    #: Fingertips within 2 cm of the surface drawn onto it.
    contact: Any = field(default_factory=lambda: ["30%", 0.0, 1.0, "60%"])
    #: What gives way to penetration: the object's SDF, the hand's parameters, or both.
    penetration_moves: str = ranged("object", choices=("object", "hand", "both"))
    sds: Any = 1.0
    #: Softness of the hand/object depth ordering in the composite, metres.
    composite_temperature: float = ranged(0.002, above=0)


@dataclass
class RaysSection:
    """Pixels rendered per step (over the two frames) and how they are drawn."""

    n_rays: int = ranged(1024, at_least=2)
    #: (object, hand, background) shares at the start and the end of the fit (linear in between).
    proportions_start: list[float] = ranged([0.30, 0.35, 0.35], at_least=0)
    proportions_end: list[float] = ranged([0.80, 0.10, 0.10], at_least=0)
    #: Hand-mask contour points per frame for the contour term.
    contour_points: int = ranged(256, at_least=1)
    #: Uniform points in the SDF's box per step for the eikonal term (besides the ray samples).
    eikonal_points: int = ranged(256, at_least=0)


@dataclass
class GuidanceSection:
    """When the prior's score distillation is added (when the prior is active)."""

    every_n_steps: int = ranged(2, at_least=1)
    warmup_steps: int = ranged(100, at_least=0)
    #: ... and once the renderer's beta is at most this, metres (0: no such wait). Early silhouettes
    #: are soft and 80% too large at beta 1 cm; the prior was trained on sharp ones.
    max_beta: float = ranged(0.003, at_least=0)
    #: ... or, whatever beta is, once this fraction of ``trainer.max_steps`` is done (1: wait for beta
    #: alone). Beta's end value depends on the clip: a gate on beta alone kept the prior off for a
    #: whole 800-step mug fit (docs/prior.md).
    start_by: float = ranged(0.5, at_least=0, at_most=1)
    #: Novel views at least this many degrees away from every input camera, seen from the hand-object
    #: centre, so the prior only fills in the unseen side and leaves the seen side to the masks (0:
    #: any view). 60 with ``prior.weight`` 0.002 raised narrow-arc F@5 by 0.046, against 0.025 for
    #: any view at 0.001 (docs/prior.md).
    unseen_angle_deg: float = ranged(60.0, at_least=0, below=180)


@dataclass
class OutputSection:
    #: Frames shown in preview.png.
    preview_frames: int = ranged(3, at_least=1)
    #: Scale (pixels) of the preview's tiles' longest side.
    preview_size: int = ranged(160, at_least=16)


@dataclass
class FitConfig:
    """``hoirecon fit``: reconstruct one clip."""

    NAME: ClassVar[str] = "fit"
    COMPONENTS: ClassVar[dict[str, str]] = {
        "clip_format": "clip_format",
        "hand": "hand_model",
        "initializer": "initializer",
        "object.sdf": "sdf",
        "object.renderer": "renderer",
        "object.estimator": "estimator",
        "prior": "prior",
    }

    #: Extra plugin modules to import before the components are built.
    plugins: list[str] = field(default_factory=list)
    #: Clip folder to fit.
    clip: str = ""
    #: How to read the clip; empty = detect the layout.
    clip_format: dict[str, Any] = field(default_factory=dict)
    #: Where outputs go; the resolved config is saved there as config.yaml.
    run_dir: str = "runs/fit"
    #: Object category; empty = the clip's own.
    category: str = ""
    hand: dict[str, Any] = field(default_factory=lambda: {"type": "mano"})
    initializer: dict[str, Any] = field(default_factory=lambda: {"type": "provided"})
    object: ObjectSection = field(default_factory=ObjectSection)
    prior: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    rays: RaysSection = field(default_factory=RaysSection)
    guidance: GuidanceSection = field(default_factory=GuidanceSection)
    output: OutputSection = field(default_factory=OutputSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)


@dataclass
class PriorDataSection:
    #: Folder written by `hoirecon synth prior-data`.
    path: str = "data/prior/r32"
    #: This many shards are held out for validation ...
    val_shards: int = ranged(1, at_least=1)
    #: ... the "last" ones, or the "first" (stable while a dataset is still growing).
    heldout: str = ranged("last", choices=("first", "last"))
    batch_size: int = ranged(8, at_least=1)
    num_workers: int = ranged(0, at_least=0)


@dataclass
class PriorTrainSection:
    lr: float = ranged(1e-4, above=0)
    weight_decay: float = ranged(0.01, at_least=0)
    #: "cosine": linear warm-up over ``warmup_steps``, then cosine decay to ``lr_min`` x lr at
    #: trainer.max_steps; "constant".
    lr_schedule: str = ranged("cosine", choices=("cosine", "constant"))
    warmup_steps: int = ranged(500, at_least=0)
    lr_min: float = ranged(0.05, at_least=0, at_most=1)
    #: Exponential moving average of the weights (validated, sampled and exported); 0 = none.
    ema_decay: float = ranged(0.999, at_least=0, below=1)
    #: Probability of dropping the category (classifier-free guidance).
    p_uncond: float = ranged(0.2, at_least=0, at_most=1)
    #: Probability of dropping the hand condition (guidance on the hand, ``prior.hand_scale``).
    p_no_hand: float = ranged(0.1, at_least=0, at_most=1)
    #: Smallest training timestep, a fraction of the schedule: 0 trains every t; the x0 distillation
    #: only asks the prior at t >= 0.75 (``prior.t_min``), so a fine-tune can spend the network there.
    t_min: float = ranged(0.0, at_least=0, below=1)
    #: A prior checkpoint (.safetensors) whose weights start the training (its network must match the
    #: run's ``network:``); empty: random weights. To continue on new data across sessions.
    init_from: str = ""
    val_every_n_steps: int = ranged(500, at_least=1)
    val_batches: int = ranged(16, at_least=1)
    #: Sample grids in TensorBoard every this many steps (0 = never).
    sample_every_n_steps: int = ranged(1000, at_least=0)
    sample_steps: int = ranged(25, at_least=1)
    guidance_scale: float = ranged(2.0, at_least=0)


@dataclass
class PriorTrainConfig:
    """``hoirecon train-prior``: train the diffusion prior on synthetic renders."""

    NAME: ClassVar[str] = "train-prior"
    COMPONENTS: ClassVar[dict[str, str]] = {}

    plugins: list[str] = field(default_factory=list)
    run_dir: str = "runs/prior"
    data: PriorDataSection = field(default_factory=PriorDataSection)
    #: The denoiser's ``NetworkConfig`` (hoirecon.priors.diffusion), validated by the prior training
    #: (hoirecon.systems.prior.network_config): this module names no concrete prior.
    network: dict[str, Any] = field(default_factory=dict)
    train: PriorTrainSection = field(default_factory=PriorTrainSection)
    trainer: TrainerSection = field(
        default_factory=lambda: TrainerSection(max_steps=20000, checkpoint_every_n_steps=1000)
    )


@dataclass
class Hoi4dClipsSection:
    """HOI4D sequences to convert (once, into the comparison's folder) and fit."""

    #: The HOI4D release root; required when ``ids`` is not empty.
    root: str = ""
    ids: list[str] = field(default_factory=list)
    #: Frame range a:b or a:b:step of each sequence.
    frames: str = "0:"
    #: Side of the square crops, pixels.
    size: int = ranged(256, at_least=16)


@dataclass
class RaySection:
    """``hoirecon compare --backend ray``: each run a Ray task (docs/compare.md, "On a Ray cluster")."""

    #: ``ray.init`` address: "" starts a Ray instance on this machine; "auto" joins the cluster this
    #: machine is part of (``ray start``); "ray://host:10001" a remote cluster's client port.
    address: str = ""
    #: CPUs and GPUs Ray reserves for each fit (the scheduler packs fits by them).
    num_cpus: float = ranged(1.0, above=0)
    num_gpus: float = ranged(0.0, at_least=0)
    #: Torch threads per fit; 0: num_cpus (rounded down, at least 1).
    threads: int = ranged(0, at_least=0)
    #: A fit whose worker process dies (killed, out of memory, node lost) is run again, resuming
    #: from its last checkpoint, up to this many times; then it is reported as failed.
    max_retries: int = ranged(2, at_least=0)


@dataclass
class CompareConfig:
    """``hoirecon compare``: every variant fitted on every clip, then tabulated."""

    NAME: ClassVar[str] = "compare"
    COMPONENTS: ClassVar[dict[str, str]] = {}

    plugins: list[str] = field(default_factory=list)
    #: The fit config every run starts from (relative to the working directory).
    fit_config: str = "configs/fit/demo.yaml"
    #: Clip folders.
    clips: list[str] = field(default_factory=list)
    #: A text file listing clip folders, one per line, relative to the file (e.g. a synth split's).
    manifest: str = ""
    hoi4d: Hoi4dClipsSection = field(default_factory=Hoi4dClipsSection)
    #: Dotted fit-config keys and the values to try; the variants are every combination.
    variants: dict[str, list[Any]] = field(default_factory=dict)
    #: Named override sets, one more axis of the grid (settings that only make sense together), e.g.
    #: ``{none: [prior.type=none], x0: [prior.type=diffusion, prior.weighting=x0]}``.
    named_variants: dict[str, list[str]] = field(default_factory=dict)
    #: Overrides for every run, e.g. trainer.max_steps=500.
    overrides: list[str] = field(default_factory=list)
    run_dir: str = "runs/compare"
    ray: RaySection = field(default_factory=RaySection)
    #: metrics.json keys tabulated and plotted.
    metrics: list[str] = field(
        default_factory=lambda: [
            "object/f@5mm[rigid]",
            "object/f@10mm[rigid]",
            "object/chamfer_cm2[rigid]",
            "object/f@10mm[hand_relative]",
            "hand/mpjpe_mm[root]",
        ]
    )


#: Which schema validates the files of each folder under configs/.
SCHEMAS: dict[str, type] = {"fit": FitConfig, "prior": PriorTrainConfig, "compare": CompareConfig}
