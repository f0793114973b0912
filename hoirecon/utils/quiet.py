"""Quiet output for the CLI: our warnings as one line each, third-party chatter silenced.

Called by ``hoirecon.cli.main`` only; importing hoirecon as a library changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

from hoirecon.errors import HoireconWarning

# Lightning resets the level of "lightning.pytorch" when it is imported, so its chatty children are
# named here: their own level survives that import.
_NOISY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.distributed",
    "lightning.pytorch.utilities.distributed",
    "diffusers",
    "smplx",
)


#: Set by ``quiet_output``: C++ libraries' stderr (MediaPipe's absl "W0000 ..." lines) is hidden.
_QUIET_NATIVE = False


@contextlib.contextmanager
def native_stderr_hidden() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null meanwhile (C++ logging that Python cannot filter), in the CLI only."""
    if not _QUIET_NATIVE:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=file or sys.stderr)


def quiet_output(debug: bool = False) -> None:
    """Print HoireconWarnings as ``warning: ...`` lines; hide other warnings unless ``debug``."""
    warnings.showwarning = _show_warning
    if debug:
        warnings.simplefilter("default")
        return
    warnings.simplefilter("ignore")
    warnings.simplefilter("always", HoireconWarning)
    # Spawned workers (prior data, compare) are fresh interpreters that warn before any code of ours
    # runs in them (numpy's "smallest subnormal" once subnormals are flushed): the environment carries
    # the filter there. Workers that talk to the user call quiet_output again for HoireconWarnings.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning's "tip" banners and the TensorFlow notice TensorBoard may print.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("POSSIBLE_USER_WARNING", "off")
    global _QUIET_NATIVE
    _QUIET_NATIVE = True
