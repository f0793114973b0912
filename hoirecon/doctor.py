"""``hoirecon doctor``: what this installation can do, without importing heavy modules needlessly.

Nothing here may trigger a build: nerfacc's CUDA extension is only reported as usable when CUDA is
available and a compiled module (or a finished JIT build) is already present.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path

from hoirecon.utils.assets import ASSETS_DIR, DEFAULT_PRIOR_CHECKPOINT

PACKAGES = (
    "torch",
    "lightning",
    "nerfacc",
    "smplx",
    "diffusers",
    "torchmetrics",
    "omegaconf",
    "tensorboard",
    "numpy",
    "trimesh",
    "scikit-image",
    "roma",
    "libigl",
)

#: The packages whose meshes the mesh library draws (``hoirecon.data.synth.library``; extra ``meshes``):
#: module -> the pip package that brings it.
MESH_PACKAGES = {
    "robosuite": "robosuite",
    "metaworld": "metaworld",
    "gymnasium_robotics": "gymnasium-robotics",
    "pybullet_data": "pybullet",
}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "MISSING"


def _nerfacc_cuda(cuda: bool) -> str:
    if not cuda:
        return "no (no CUDA device; hoirecon's CPU estimator is used)"
    if importlib.util.find_spec("nerfacc.csrc") is not None:
        return "yes (prebuilt extension)"
    build_dir = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions"))
    built = any(build_dir.glob("*/nerfacc_cuda/*.so"))
    return "yes (JIT build present)" if built else "not yet (nerfacc builds its extension on first CUDA use)"


def _tinycudann(cuda: bool) -> str:
    if importlib.util.find_spec("tinycudann") is None:
        return "not installed (hash grid uses hoirecon's torch encoding)"
    return "yes" if cuda else "installed, unused without CUDA"


def report() -> list[tuple[str, str]]:
    """(label, value) rows describing this installation."""
    import torch

    from hoirecon.version import __version__

    cuda = torch.cuda.is_available()
    rows = [
        ("hoirecon", __version__),
        ("python", f"{platform.python_version()} ({platform.machine()}, {platform.system()})"),
    ]
    rows += [(name, _version(name)) for name in PACKAGES]
    rows += [
        ("cpu cores", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
        ("cuda", f"yes ({torch.cuda.get_device_name(0)})" if cuda else "no"),
        ("nerfacc cuda", _nerfacc_cuda(cuda)),
        ("tinycudann", _tinycudann(cuda)),
        (
            "accelerator",
            "cpu (the default); trainer.accelerator=auto would use "
            + (
                f"cuda:0 ({torch.cuda.get_device_name(0)}), nerfacc's CUDA sampling and tinycudann if built"
                if cuda
                else "the cpu too (no CUDA)"
            ),
        ),
    ]
    found = [name for name in MESH_PACKAGES if importlib.util.find_spec(name) is not None]
    missing = [name for name in MESH_PACKAGES if name not in found]
    rows.append(
        (
            "mesh library",
            (", ".join(found) or "no packages")
            + (f"; missing {', '.join(missing)} (pip install -e '.[meshes]')" if missing else ""),
        )
    )
    mediapipe = _version("mediapipe")
    ok = mediapipe == "0.10.21"
    rows.append(
        (
            "mediapipe",
            f"{mediapipe} (data video, initializer mediapipe" + (")" if ok else ": pip install -e '.[video]')"),
        )
    )
    hand = sorted(ASSETS_DIR.glob("*RIGHT*.npz"))
    rows.append(("built-in hand", str(hand[0]) if hand else "not built yet"))
    shipped = sorted(p.name for p in ASSETS_DIR.glob("prior*.safetensors") if p != DEFAULT_PRIOR_CHECKPOINT)
    default = str(DEFAULT_PRIOR_CHECKPOINT) + ("" if DEFAULT_PRIOR_CHECKPOINT.is_file() else ": missing")
    rows.append(("default prior", default + (f" (also shipped: {', '.join(shipped)})" if shipped else "")))
    return rows
