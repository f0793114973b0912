"""``hoirecon compare --backend ray``: each run of the grid a Ray task, on whatever cluster
``ray.init(address=...)`` reaches (this machine, a Ray cluster on SLURM or Kubernetes).

The same runs as the local backend (``compare.plan``), each the same fit in a process of its own (a Ray
worker used for one task: ``max_calls=1``), writing to the same run folders, which must be on storage
every node sees (docs/compare.md). Ray runs a task again when its worker dies (``ray.max_retries``);
the run then resumes from its last checkpoint, because whether to resume is decided as the fit starts
(``compare.fit_request``). A run that failed on every try is tabulated with its error; the driver records
every outcome, so rerunning the command resumes the grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hoirecon.errors import HoireconError
from hoirecon.eval.compare import Job, fit_in_this_process, fit_request, record_outcome
from hoirecon.schema import CompareConfig


def run_all_ray(
    jobs: list[Job], cfg: CompareConfig, advance: Callable[[int], None] | None = None, threads: int = 0
) -> list[tuple[Job, str]]:
    """Run every unfinished job as a Ray task; returns the (job, error) of those that failed."""
    try:
        import ray
    except ImportError:
        raise HoireconError(
            "--backend ray needs Ray, which is not installed", hint="pip install -e '.[ray]' (or pip install ray)"
        ) from None
    todo = [j for j in jobs if not j.done]
    if not todo:
        return []
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=cfg.ray.address or None, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = cfg.ray.address or "a local instance"
            raise HoireconError(f"ray.address: could not start or reach Ray ({where}): {exc}") from None
    threads = threads or cfg.ray.threads or max(1, int(cfg.ray.num_cpus))
    fit = ray.remote(
        num_cpus=cfg.ray.num_cpus,
        num_gpus=cfg.ray.num_gpus,
        max_retries=cfg.ray.max_retries,
        retry_exceptions=False,  # a fit that raises fails the same way again: only lost workers are retried
        max_calls=1,  # a fresh worker process per fit, as the local backend's spawned one
    )(_fit_task)
    pending = {fit.remote(job, cfg, threads): job for job in todo}
    failures = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                error, seconds = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # its worker died on every try
                tries = cfg.ray.max_retries + 1
                error, seconds = f"its Ray worker died ({type(exc).__name__}) on each of {tries} tries", 0.0
            record_outcome(job, error, seconds)
            if error:
                failures.append((job, error))
            if advance:
                advance(1)
    finally:
        if started_here:
            ray.shutdown()  # a local instance ends with the command; tasks of a cluster end with the driver
    return failures


def _fit_task(job: Job, cfg: CompareConfig, threads: int) -> tuple[str, float]:
    """In a Ray worker: the run's fit (started or resumed); '' or the error line, and the seconds."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    request = fit_request(job, cfg, threads)
    start = time.perf_counter()
    error = fit_in_this_process(request, str(job.run_dir / "fit.log"))
    return error, time.perf_counter() - start
