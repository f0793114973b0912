"""What a component of each role must provide: one Protocol per role, checked when it registers.

``register(role, name)`` checks the class against ``CONTRACTS[role]`` and fails with one line naming
the first missing member (docs/architecture.md, section Registry). Only names are checked there, not
signatures: the docstrings below are the contract, with shapes. Frames and units follow
docs/architecture.md: metres, OpenCV cameras, ``T_to_from_from``.

Any component may also follow the training step (``StepFollower``): the fit calls ``on_step`` on
every part of the scene and objective that has it, before each step's losses.

Types of other layers are named in strings only: this module sits at the bottom with the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch


class StepFollower(Protocol):
    """Optional for every role: called by the fit once per step, before the losses."""

    def on_step(self, step: int, max_steps: int) -> None:
        """``step`` counts from 0; ``max_steps`` is the run's length (for schedules relative to it)."""
        ...


class SDF(Protocol):
    """Role ``sdf``: the object's signed distance field, object frame, metres (negative inside)."""

    #: Half-side (metres) of the cube centred at the origin where the shape lives.
    bound: float

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3) -> sdf (N,)."""
        ...

    def sdf_and_gradient(self, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 3) -> sdf (N,), d sdf / d x (N, 3); with ``create_graph`` both carry parameter gradients."""
        ...


class Estimator(Protocol):
    """Role ``estimator``: where along each ray the SDF is evaluated (an ``nn.Module``; state in buffers)."""

    def sample(
        self,
        sdf_net: SDF,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor,
        far: torch.Tensor,
        training: bool = True,
        density_scale: float = 0.0,
    ) -> Any:
        """origins, unit directions (R, 3), near, far (R,) -> ``RaySamples``: t_starts, t_ends (R, S) and
        hit (R,) bool. ``density_scale``: the renderer's surface width (metres)."""
        ...


class Renderer(Protocol):
    """Role ``renderer``: volume rendering of an SDF along rays (an ``nn.Module``)."""

    def __call__(
        self,
        sdf_net: SDF,
        estimator: Estimator,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor,
        far: torch.Tensor,
        training: bool = True,
    ) -> Any:
        """Rays (R, 3), near/far (R,) -> ``VolumeOutput``: opacity (R,), distance (R,), normal (R, 3), ..."""
        ...

    def density_scale(self) -> float:
        """The current width of the rendered surface (metres), e.g. VolSDF's beta."""
        ...


class Prior(Protocol):
    """Role ``prior``: guidance on novel views of the object next to the hand (docs/prior.md).

    Channel layouts are ``hoirecon.priors.base.OBJECT_CHANNELS`` and ``HAND_CHANNELS``. A prior's own
    weights stay frozen and out of the fit's checkpoint.
    """

    #: False for priors that never contribute (the fit then skips the novel-view renders).
    active: bool
    #: Side of the square novel-view renders, pixels.
    resolution: int

    def sds_loss(
        self, object_channels: torch.Tensor, hand_condition: torch.Tensor, categories: Sequence[str], step: int
    ) -> torch.Tensor:
        """object_channels (B, 5, H, W) with gradients, hand_condition (B, 7, H, W) -> a scalar whose
        gradient w.r.t. ``object_channels`` is the guidance."""
        ...


class HandModel(Protocol):
    """Role ``hand_model``: MANO-format hand (an ``nn.Module``), hand frame = the model's frame."""

    #: (F, 3) long triangle indices; (5,) long fingertip vertex ids (thumb..pinky); (V, 2) vertex code.
    faces: torch.Tensor
    tip_vertex_ids: torch.Tensor
    vertex_code: torch.Tensor

    def __call__(
        self, hand_pose: torch.Tensor, betas: torch.Tensor, global_orient: torch.Tensor, transl: torch.Tensor
    ) -> Any:
        """hand_pose (B, 45), betas (B, 10), global_orient, transl (B, 3) -> ``HandOutput``: vertices
        (B, V, 3), joints (B, 21, 3), faces."""
        ...


class Initializer(Protocol):
    """Role ``initializer``: the hands and cameras a fit starts from."""

    def initialize(self, clip: Any, hand_model: HandModel) -> Any:
        """A ``Clip`` of N frames -> ``HandInit``: hand_pose (N, 45), betas (10,), T_cam_from_hand (N, 4, 4)."""
        ...


class ClipFormat(Protocol):
    """Role ``clip_format``: reads one clip layout (docs/data.md).

    ``priority`` orders automatic detection: the format with the highest priority whose ``detect``
    accepts a folder reads it (ties: by name). Specific layouts rank above generic ones.
    """

    priority: ClassVar[int]

    @staticmethod
    def detect(path: Path) -> bool:
        """True when ``path`` looks like a clip in this layout (cheap: file names, no parsing)."""
        ...

    def load(self, path: str | Path) -> Any:
        """The clip at ``path`` as a validated ``Clip``; problems raise ``DataError`` naming the file."""
        ...


class ObjectGenerator(Protocol):
    """Role ``object_generator``: objects for synthetic clips and prior data."""

    def generate(self, seed: int) -> Any:
        """A ``SynthObject`` (category, sdf (N, 3) -> (N,), watertight mesh, parameters) drawn from ``seed``."""
        ...


CONTRACTS: dict[str, type] = {
    "sdf": SDF,
    "renderer": Renderer,
    "estimator": Estimator,
    "prior": Prior,
    "initializer": Initializer,
    "hand_model": HandModel,
    "clip_format": ClipFormat,
    "object_generator": ObjectGenerator,
}


def members(protocol: type) -> list[str]:
    """The names a protocol declares: its methods and its annotated attributes, in declaration order."""
    names = [n for n in protocol.__dict__.get("__annotations__", {})]
    names += [n for n, v in protocol.__dict__.items() if callable(v) or isinstance(v, staticmethod)]
    return [n for n in dict.fromkeys(names) if not n.startswith("_") or n == "__call__"]


def missing_member(cls: type, role: str) -> str | None:
    """The first member of ``role``'s contract that ``cls`` lacks, or None.

    Attributes may be set in ``__init__`` (e.g. ``bound``, ``resolution``, buffers): only methods and
    class-level attributes can be seen before an instance exists, so attributes are checked when the
    class declares them in its body or annotations, or not at all.
    """
    protocol = CONTRACTS[role]
    annotated = set(protocol.__dict__.get("__annotations__", {}))
    for name in members(protocol):
        if name in annotated:
            if name in _CLASS_LEVEL and not _has_class_attr(cls, name):
                return name
            continue
        if name == "__call__":
            if not (_has_class_attr(cls, "forward") or _has_class_attr(cls, "__call__")):
                return "forward"
        elif not callable(getattr(cls, name, None)):
            return name
    return None


#: Attributes that must exist on the class itself (they are read before an instance is built).
_CLASS_LEVEL = {"priority"}


def _has_class_attr(cls: type, name: str) -> bool:
    return any(name in d for d in _class_dicts(cls))


def _class_dicts(cls: type) -> list[dict]:
    # torch's own bases do not count: nn.Module has a placeholder forward that only raises
    return [vars(k) for k in cls.__mro__ if k is not object and not k.__module__.startswith("torch.")]
