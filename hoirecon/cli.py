"""The ``hoirecon`` command line.

Every subcommand has ``--help``. A user's mistake is one ``error:`` line (plus a ``hint:`` line when
there is something to suggest) and exit code 1; ``--debug`` shows the traceback instead. Usage
errors and capabilities that are not built yet exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hoirecon.errors import HoireconError, Interrupted, NotBuiltError
from hoirecon.version import __version__

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and a hint instead of the usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        print(f"hint: {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)


# -- handlers -------------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    from hoirecon.registry import REGISTRY, ROLES

    REGISTRY.load_all()
    roles = [args.role] if args.role else list(ROLES)
    for role in roles:
        if role not in ROLES:
            raise HoireconError(f"unknown role '{role}'; roles: {', '.join(ROLES)}")
        print(role)
        entries = REGISTRY.entries(role)
        if not entries:
            print("  (none yet)")
        width = max((len(e.name) for e in entries), default=0)
        for entry in entries:
            print(f"  {entry.name:<{width}}  {entry.source}")
    if REGISTRY.failed_plugins:
        print("plugins that failed to load")
        for label, err in REGISTRY.failed_plugins.items():
            print(f"  {label}: {err}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from hoirecon.doctor import report
    from hoirecon.registry import REGISTRY

    rows = report()
    REGISTRY.load_all()
    failed = REGISTRY.failed_plugins
    rows.append(("plugins failed", "none" if not failed else "; ".join(f"{k}: {v}" for k, v in failed.items())))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def _require_config(args: argparse.Namespace, command: str) -> None:
    """A run needs --config FILE or --resume RUN_DIR."""
    if not (args.config or args.resume):
        raise HoireconError(f"{command} needs --config FILE or --resume RUN_DIR", hint=f"hoirecon {command} --help")


def _cmd_fit(args: argparse.Namespace) -> int:
    from hoirecon.api import fit_clip

    _require_config(args, "fit")

    def announce(parts) -> None:
        clip = parts.clip
        h, w = clip.image_size
        print(f"fitting {clip.path}: {len(clip)} frames, {w}x{h} px, {parts.category or 'no category'}")

    def say(message: str) -> None:
        print(message, flush=True)

    result = fit_clip(args.config, resume=args.resume, overrides=args.overrides, on_start=announce, say=say)
    run_dir = result.run_dir
    if result.object_mesh is None:
        print("warning: the SDF has no surface inside its box; no object mesh was written", file=sys.stderr)
    print(f"object mesh: {run_dir / 'object.obj'} (in the hand frame: {run_dir / 'object_in_hand.obj'})")
    print(f"hands, poses: {result.hands}/, {result.poses}")
    print(f"preview: {result.preview}; report: {result.report}")
    if result.metrics:
        width = max(len(k) for k in result.metrics)
        print(f"metrics ({run_dir / 'metrics.json'}):")
        for key, value in result.metrics.items():
            print(f"  {key:<{width}}  {value:.4f}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from hoirecon.fit.outputs import object_mesh, write_meshes_and_poses
    from hoirecon.runtime import configure_cpu
    from hoirecon.sdf.mesh import EmptySurfaceError
    from hoirecon.systems.fit import load_run

    configure_cpu(0)
    parts = load_run(args.run_dir)
    out = Path(args.out) if args.out else Path(args.run_dir) / "export"  # the fit's own outputs stay
    try:
        mesh = object_mesh(parts.scene, args.resolution)
    except EmptySurfaceError as exc:
        raise HoireconError(f"{args.run_dir}: {exc}") from None
    paths = write_meshes_and_poses(parts.scene, out, mesh, parts.clip.frame_names, (f".{args.format}",))
    print(f"object: {paths[2]} ({len(mesh.vertices)} vertices, grid {args.resolution}); hand frame: {paths[3]}")
    print(f"hands: {len(paths) - 4} files in {out / 'hands'}; poses: {paths[0]}, {paths[1]}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from hoirecon.data.load import load_clip
    from hoirecon.eval.fit_scores import evaluate
    from hoirecon.eval.report import run_report
    from hoirecon.fit.outputs import object_mesh
    from hoirecon.runtime import configure_cpu
    from hoirecon.sdf.mesh import EmptySurfaceError
    from hoirecon.systems.fit import load_run, run_clip
    from hoirecon.utils.io import atomic_write_text

    configure_cpu(0)
    # the ground truth first: rebuilding the fit takes minutes on a loaded machine
    clip = load_clip(args.gt) if args.gt else run_clip(Path(args.run_dir))
    if clip.gt is None:
        raise HoireconError(f"{clip.path}: the clip has no ground truth (gt/)", hint="pass --gt CLIP with a gt/ folder")
    parts = load_run(args.run_dir)
    if len(clip) != parts.scene.n_frames:
        raise HoireconError(f"{clip.path}: {len(clip)} frames, the run fitted {parts.scene.n_frames}")
    resolution = args.resolution or parts.config.object.export_resolution
    try:
        mesh = object_mesh(parts.scene, resolution)
    except EmptySurfaceError:
        mesh = None
        print("warning: the SDF has no surface inside its box; object metrics are skipped", file=sys.stderr)
    metrics = evaluate(parts.scene, clip, mesh)
    path = Path(args.run_dir) / "metrics.json"
    if path.is_file():  # the fit's own figures (fit/sds_steps, ...) are not scores: keep them
        metrics.update({k: v for k, v in json.loads(path.read_text()).items() if k.startswith("fit/")})
    atomic_write_text(path, json.dumps(metrics, indent=1))
    width = max((len(k) for k in metrics), default=0)
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:.4f}")
    print(f"written to {path}; report: {run_report(Path(args.run_dir))}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from hoirecon.config import compose, save_config, validate
    from hoirecon.eval import compare
    from hoirecon.schema import CompareConfig
    from hoirecon.utils.progress import progress_bar

    overrides = [*args.overrides, *([f"ray.address={args.address}"] if args.address is not None else [])]
    cfg = compose(Path(args.config), overrides)
    config = validate(cfg, CompareConfig)
    shard = compare.parse_shard(args.shard)
    jobs = compare.plan(config, shard)
    out = Path(config.run_dir)
    save_config(cfg, out / "config.yaml")
    todo = [j for j in jobs if not j.done]
    finished_already = f"{len(jobs)} runs in this shard ({len(jobs) - len(todo)} finished already)"
    if args.backend == "ray":
        from hoirecon.eval.compare_ray import run_all_ray

        where = config.ray.address or "a Ray instance on this machine"
        print(f"{finished_already}, as Ray tasks on {where} ({config.ray.num_cpus:g} CPUs each)")
        with progress_bar(len(todo), "runs") as advance:
            failures = run_all_ray(jobs, config, advance, threads=args.threads)
    else:
        print(f"{finished_already}, {args.jobs} at a time")
        with progress_bar(len(todo), "runs") as advance:
            failures = compare.run_all(jobs, config, args.jobs, advance, threads=args.threads)
    for job, error in failures:
        print(f"error: {job.run_dir}: {error}", file=sys.stderr)
    rows = compare.collect(config)
    table = compare.write_results(rows, config.metrics, out)
    from hoirecon.eval.report import compare_report

    compare_report(out, rows, config.metrics)
    print(table)
    print(f"results: {out / 'results.csv'}, {out / 'results.md'}, {out / 'report.html'}, plots: {out}/plot_*.png")
    return 1 if failures else 0


def _cmd_train_prior(args: argparse.Namespace) -> int:
    from hoirecon.api import train_prior

    _require_config(args, "train-prior")
    result = train_prior(args.config, resume=args.resume, overrides=args.overrides)
    if result.checkpoint is not None:
        print(f"prior checkpoint: {result.checkpoint}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    objects = [o.strip() for o in (args.objects or "procedural").split(",") if o.strip()]
    meshes = args.object_mesh or []
    if args.what == "prior-data":
        return _synth_prior_data(args, objects, meshes)
    from hoirecon.categories import KNOWN_CATEGORIES, normalize_category
    from hoirecon.data.synth.clip import SynthClipConfig
    from hoirecon.utils.progress import progress_bar

    if len(objects) != 1:
        raise HoireconError(f"--objects: one source for a {args.what} (procedural or library), not {args.objects}")
    if len(meshes) > 1:
        raise HoireconError(f"--object-mesh: one mesh for a {args.what} (prior-data takes several)")
    base = SynthClipConfig(seed=args.seed, frames=args.frames, resolution=args.resolution, objects=objects[0])
    base.object_mesh, base.object_size = (meshes[0] if meshes else ""), args.object_size
    if meshes and not args.category:
        base.category = normalize_category(Path(meshes[0]).stem)
        if base.category not in KNOWN_CATEGORIES:
            print(
                f"warning: category '{base.category}' (the mesh's file name) is not one the prior knows "
                f"({', '.join(KNOWN_CATEGORIES)}); pass --category",
                file=sys.stderr,
            )
    elif args.category and args.what == "split" and not meshes:
        raise HoireconError(
            "synth split: --category names the --object-mesh's category; a split's clips have their own"
        )
    elif args.category:
        base.category = args.category
    if args.what == "clip":
        from hoirecon.data.synth.commands import synth_clip

        if not args.category and not meshes:
            raise HoireconError("synth clip needs --category (or --object-mesh)", hint="hoirecon synth clip --help")
        if args.arc is not None:
            base.arc_degrees = args.arc
        print(f"rendering {base.frames} frames at {base.resolution} px ...", flush=True)
        path = synth_clip(base, args.out, overwrite=args.overwrite)
        print(f"wrote {base.frames} frames of the {base.category} category (seed {base.seed}) to {path}")
        return 0
    from hoirecon.data.synth.commands import SPLITS, split_configs, synth_split

    if args.preset not in SPLITS:
        raise HoireconError(f"unknown split preset '{args.preset}'; presets: {', '.join(SPLITS)}")
    with progress_bar(len(split_configs(args.preset, base, args.arc)), f"split {args.preset}") as advance:
        paths = synth_split(args.preset, args.out, base, advance, args.arc)
    print(f"{len(paths)} clips in {args.out} (list: {Path(args.out) / 'manifest.txt'})")
    return 0


def _synth_prior_data(args: argparse.Namespace, objects: list[str], meshes: list[str]) -> int:
    from hoirecon.data.synth.prior_data import PriorDataConfig, generate, missing_shards
    from hoirecon.utils.progress import progress_bar

    cfg = PriorDataConfig(seed=args.seed, workers=args.workers, objects=objects, object_meshes=meshes)
    cfg.object_size, cfg.mesh_category = args.object_size, args.category or ""
    if meshes and args.objects is None:
        cfg.objects = ["mesh"]  # --object-mesh alone: only those meshes
    if args.n is not None:
        cfg.n = args.n
    if args.shard_size is not None:
        cfg.shard_size = args.shard_size
    if args.resolutions:
        cfg.resolutions = args.resolutions
    if cfg.n < 1 or cfg.shard_size < 1:
        raise HoireconError("--n and --shard-size must be positive")
    todo = missing_shards(cfg, Path(args.out))
    skipped = cfg.n_shards - len(todo)
    if skipped:
        print(f"resuming: {skipped} of {cfg.n_shards} shards already in {args.out}")
    samples_todo = sum(min(cfg.shard_size, cfg.n - i * cfg.shard_size) for i in todo)
    with progress_bar(samples_todo, "prior samples") as advance:
        indexes = generate(cfg, args.out, advance)
    for r, index in indexes.items():
        print(f"{index['samples']} samples at {r}x{r} in {Path(args.out) / f'r{r}'}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    if args.what == "check":
        from hoirecon.data.check import check

        clip_format: str | dict = "auto"
        if args.format:
            from hoirecon.config import parse_overrides

            clip_format = {"type": args.format[0], **parse_overrides(args.format[1:])}
        ok, lines = check(args.path, clip_format)
        print("\n".join(lines))
        return 0 if ok else 1
    if args.what in ("video", "masks"):
        return _prepare_clip(args)
    return _convert_hoi4d(args)


def _prepare_clip(args: argparse.Namespace) -> int:
    from hoirecon.data.video import parse_box
    from hoirecon.prepare import VideoOptions, masks_for_clip, video_to_clip

    box = parse_box(args.object_box)
    if args.what == "masks":
        clip = masks_for_clip(args.path, box, args.fov or 0.0, overwrite=args.overwrite, category=args.category or "")
        print(f"wrote hand and object masks and hands.npz for {len(clip)} frames in {args.path}")
    else:
        options = VideoOptions(
            category=args.category or "",
            fov_degrees=args.fov or VideoOptions.fov_degrees,
            size=args.size,
            stride=args.stride,
            max_frames=args.max_frames,
            mirror=args.mirror,
        )
        clip, _, _ = video_to_clip(args.path, args.out, box, options)
        print(f"wrote {len(clip)} frames of {clip.category or 'an unknown category'} to {args.out}")
    for note in clip.warnings:
        print(f"  {note}")
    print(f"next: hoirecon data check {args.path if args.what == 'masks' else args.out}")
    return 0


def _convert_hoi4d(args: argparse.Namespace) -> int:
    from hoirecon.data.formats.hoirecon import write_clip
    from hoirecon.registry import REGISTRY

    if Path(args.out).exists():
        raise HoireconError(f"{args.out}: already exists; choose a new --out folder")
    cfg = {"type": "hoi4d", "root": args.root, "frames": args.frames or "0:", "size": args.size}
    clip = REGISTRY.build("clip_format", cfg).load(args.seq)
    write_clip(clip, args.out)
    print(f"wrote {len(clip)} frames of {clip.category or 'an unknown category'} to {args.out}")
    return 0


# -- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and warnings")

    parser = _Parser(
        prog="hoirecon",
        description="Reconstruct a hand-held object and the hand from a short monocular clip.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"hoirecon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(handler=handler, parser=p)
        return p

    p = add("fit", "fit one clip: object SDF, hands, hand-object pose, cameras", _cmd_fit)
    p.add_argument("--config", help="YAML config (see configs/fit/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.max_steps=500")

    p = add("train-prior", "train the diffusion prior on synthetic renders", _cmd_train_prior)
    p.add_argument("--config", help="YAML config (see configs/prior/)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. trainer.max_steps=100")

    # synth and data: one subparser per kind of work, each with only its own options (so
    # `hoirecon data video --help` lists what video takes, and an option another kind of work
    # takes is a usage error rather than silently ignored)
    p = add("synth", "make synthetic clips and prior-training data", _cmd_synth)
    kinds = p.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    kinds.required = True
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--out", required=True, help="output folder")
    source.add_argument("--seed", type=int, default=0, help="random seed")
    source.add_argument(
        "--objects",
        help="object source: procedural (default) or library, real meshes from pip install -e '.[meshes]'; "
        "prior-data takes a list, e.g. procedural,library,mesh (mesh: the --object-mesh files)",
    )
    source.add_argument(
        "--object-mesh",
        nargs="+",
        metavar="MESH",
        help="a mesh file (.obj/.ply/.stl/.glb, open ones too) as the object of the clip or of every clip of "
        "the split; prior-data takes several (object source 'mesh')",
    )
    source.add_argument(
        "--object-size", type=float, default=0.0, help="scale the mesh(es) to this largest side, metres"
    )
    source.add_argument("--category", help="object category (clip; with --object-mesh: the mesh's category)")
    frames = argparse.ArgumentParser(add_help=False)
    frames.add_argument("--frames", type=int, default=24, help="frames per clip")
    frames.add_argument("--resolution", type=int, default=128, help="image side in pixels")
    frames.add_argument("--arc", type=float, help="degrees the camera sweeps (clip: 360; split: the preset's)")

    def kind(name: str, help_text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        q = kinds.add_parser(name, help=help_text, description=help_text, parents=[common, *parents])
        q.set_defaults(parser=q)
        return q

    q = kind("clip", "render one synthetic clip with ground truth", source, frames)
    q.add_argument("--overwrite", action="store_true", help="replace an existing clip")
    q = kind("split", "render a named split of clips and its manifest.txt (a rerun resumes)", source, frames)
    q.add_argument("--preset", default="hoi4d-like", help="split preset (default: %(default)s)")
    q = kind("prior-data", "render the diffusion prior's training shards (a rerun resumes)", source)
    q.add_argument("--n", type=int, help="number of samples (default 50000)")
    q.add_argument("--shard-size", type=int, help="samples per shard (default 500)")
    q.add_argument("--resolutions", type=int, nargs="+", help="image sides (default 32 64)")
    q.add_argument("--workers", type=int, default=2, help="parallel processes")

    p = add("data", "check clips, make one from your own video, convert other datasets", _cmd_data)
    kinds = p.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    kinds.required = True
    box = argparse.ArgumentParser(add_help=False)
    box.add_argument(
        "--object-box", metavar="X0,Y0,X1,Y1", required=True, help="the object's box on the first frame, pixels"
    )
    box.add_argument("--category", help="the object's category, e.g. mug")

    q = kind("check", "check that a clip loads and say what is in it")
    q.add_argument("path", help="clip folder")
    q.add_argument(
        "--format",
        nargs="+",
        metavar="ARG",
        help="clip format and its settings, e.g. --format folder fov_degrees=60 (default: detected)",
    )
    q = kind(
        "video",
        "make a clip from a video: frames cropped, hands and masks bootstrapped (pip install -e '.[video]')",
        box,
    )
    q.add_argument("path", help="video file (.mp4, .mov, ...)")
    q.add_argument("--out", required=True, help="output clip folder")
    q.add_argument("--fov", type=float, help="the camera's horizontal field of view, degrees (default 65)")
    q.add_argument("--size", type=int, default=256, help="side of the square cropped frames (default: %(default)s)")
    q.add_argument("--stride", type=int, default=1, help="keep every stride-th frame")
    q.add_argument("--max-frames", type=int, default=0, help="keep at most this many frames, 0 = all")
    q.add_argument("--mirror", action="store_true", help="flip the frames left-right, for a left hand")
    q = kind("masks", "add bootstrapped hand and object masks and hands to a clip of frames", box)
    q.add_argument("path", help="clip folder")
    q.add_argument("--fov", type=float, help="the camera's horizontal field of view, degrees (default: the clip's)")
    q.add_argument("--overwrite", action="store_true", help="replace existing masks")
    q = kind("hoi4d", "convert a HOI4D sequence into a clip")
    q.add_argument("--root", required=True, help="HOI4D release root")
    q.add_argument("--seq", required=True, help="HOI4D sequence id")
    q.add_argument("--out", required=True, help="output clip folder")
    q.add_argument("--frames", help="frame range a:b or a:b:step (default all)")
    q.add_argument("--size", type=int, default=256, help="side of the square cropped frames (default: %(default)s)")

    p = add("eval", "score a finished run against ground truth", _cmd_eval)
    p.add_argument("run_dir", help="run folder")
    p.add_argument("--gt", help="clip folder with gt/ (default: the run's clip)")
    p.add_argument("--resolution", type=int, help="marching-cubes grid size (default: the run's)")

    p = add("compare", "fit a grid of variants over clips and tabulate", _cmd_compare)
    p.add_argument("--config", required=True, help="YAML config (see configs/compare/)")
    p.add_argument("--shard", help="i/n: run only this shard of the grid")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (local backend)")
    p.add_argument("--threads", type=int, default=0, help="threads per process (default: the cores split between jobs)")
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: processes on this machine; ray: Ray tasks (the ray: section; pip install -e '.[ray]')",
    )
    p.add_argument("--address", help="the Ray cluster's address (ray.address): 'auto', 'ray://host:10001'")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. hoi4d.root=/data")

    p = add("export", "re-extract meshes and poses from a run's checkpoint", _cmd_export)
    p.add_argument("run_dir", help="run folder")
    p.add_argument("--resolution", type=int, default=256, help="marching-cubes grid size (default: %(default)s)")
    p.add_argument("--format", choices=["obj", "ply", "glb"], default="obj", help="mesh format (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="where to write (default: RUN_DIR/export; the fit's own files stay)")

    p = add("list", "list every registered component by role, with where it came from", _cmd_list)
    p.add_argument("--role", help="only this role")

    add("doctor", "report versions, threads, CUDA/nerfacc/tinycudann and built-in assets", _cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads that sleep while they wait instead of spinning, unless the user says otherwise:
    # beside a second fit a spinning fit ran 5.7x slower than alone, a sleeping one 1.1x (25% slower
    # alone; docs/benchmarks.md, "A fit beside other work"). libgomp reads it when torch loads, so
    # it is set before anything imports torch.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from hoirecon.utils.quiet import quiet_output

    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # told by the (sub)command that was given them, with its --help as the hint
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    debug = getattr(args, "debug", False)
    quiet_output(debug)
    try:
        return args.handler(args)
    except NotBuiltError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"{exc}\nhint: {exc.hint}", file=sys.stderr)
        return 130
    except HoireconError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
