"""Reading a clip's array and text files with one-line errors naming the file (and key).

Every array any clip format reads comes through ``ArrayFile.read``, which checks its kind (numbers),
shape and finiteness with ``check_array`` and names it as its file does (DiffHOI's ``cTw``, not
hoirecon's ``T_cam_from_hand``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hoirecon.data.clip import Origin, Report, Shape, check_array

#: Bytes of text files (printable ASCII, tab, newlines, anything of UTF-8's multi-byte range).
TEXT_BYTES = frozenset([9, 10, 13, *range(32, 127), *range(128, 256)])
#: What a file's first bytes say it is.
CONTENTS = {
    "npz": "an .npz archive",
    "npy": "a single .npy array",
    "pickle": "pickled Python data",
    "text": "a text file",
    "empty": "an empty file",
    "other": "unrecognised content",
}
WRITERS = {"npz": "numpy.savez", "npy": "numpy.save"}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sniff(head: bytes) -> str:
    """What a file is, from its first bytes: a key of ``CONTENTS``."""
    if not head:
        return "empty"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "npz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:1] == b"\x80":
        return "pickle"
    return "text" if all(b in TEXT_BYTES for b in head) else "other"


class ArrayFile:
    """One .npz archive (or .npy array) of a clip, opened once; ``read`` returns its arrays, checked.

    Opening reports, once, a missing file, a folder, a file that is not the NumPy file its name says
    (text, pickled data, an .npy for an .npz), a broken archive and missing ``required`` keys.
    ``read`` reports the key's own problems: pickled objects, not numbers, the wrong shape, NaN/inf.
    """

    def __init__(self, report: Report, path: str | Path, required: tuple[str, ...] = ()):
        self.report = report
        self.path = Path(path)
        self.kind = "npy" if self.path.suffix.lower() == ".npy" else "npz"
        #: key (None for an .npy) -> its array, or why it cannot be read
        self.arrays: dict[str | None, np.ndarray | str] = {}
        self.ok = self._open() and self._has(required)

    def __contains__(self, key: str | None) -> bool:
        return key in self.arrays

    def stored(self) -> dict[str | None, np.ndarray]:
        """The readable arrays as they are stored (unchecked), e.g. to copy them on."""
        return {k: v for k, v in self.arrays.items() if not isinstance(v, str)}

    def origin(self, key: str | None = None) -> Origin:
        return Origin(str(self.path), key if self.kind == "npz" else None)

    def read(
        self, key: str | None, shapes: Shape | list[Shape], n: int | None = None, dtype: type = np.float32
    ) -> np.ndarray | None:
        """The array at ``key`` (None for an .npy) as checked by ``check_array``, or None after an error."""
        if not self.ok:
            return None
        if key not in self.arrays:
            self.report.error(f"{self.path}: missing key {key} (has: {', '.join(sorted(self.arrays)) or 'none'})")
            return None
        value = self.arrays[key]
        if isinstance(value, str):
            self.report.error(f"{self.origin(key)} {value}")
            return None
        return check_array(self.report, self.origin(key), value, shapes, n, dtype)

    def _open(self) -> bool:
        path = self.path
        if not path.exists():
            self.report.error(f"{path}: file not found")
            return False
        if path.is_dir():
            self.report.error(f"{path}: is a folder, expected {CONTENTS[self.kind]}")
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except OSError as exc:
            self.report.error(f"{path}: unreadable ({first_line(exc)})")
            return False
        found = sniff(head)
        if found != self.kind:
            self.report.error(
                f"{path}: {CONTENTS[found]}, not {CONTENTS[self.kind]} (write it with {WRITERS[self.kind]})"
            )
            return False
        try:
            if self.kind == "npy":
                self.arrays[None] = _member(lambda: np.load(path, allow_pickle=False))
            else:
                with np.load(path, allow_pickle=False) as data:
                    for key in data.files:
                        self.arrays[key] = _member(lambda key=key: data[key])
        except Exception as exc:  # noqa: BLE001 - any failure to parse the archive is the file's problem
            self.report.error(f"{path}: unreadable .{self.kind} ({first_line(exc)})")
            return False
        return True

    def _has(self, required: tuple[str, ...]) -> bool:
        missing = [key for key in required if key not in self.arrays]
        if missing:
            has = ", ".join(sorted(k for k in self.arrays if k is not None)) or "none"
            self.report.error(f"{self.path}: missing key(s) {', '.join(missing)} (has: {has})")
        return not missing


def _member(load) -> np.ndarray | str:
    """One stored array, or why it cannot be read (as the end of a message about its key)."""
    try:
        return np.asarray(load())
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # numpy's words for an array of Python objects
            return "holds pickled Python objects, expected numbers"
        return f"is unreadable ({first_line(exc)})"
    except Exception as exc:  # noqa: BLE001 - a corrupt member can raise anything
        return f"is unreadable ({first_line(exc)})"


def read_text(report: Report, path: Path) -> str | None:
    """A UTF-8 text file's contents, or None after an error (missing, a folder, not UTF-8)."""
    if path.is_dir():
        report.error(f"{path}: is a folder, expected a text file")
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        report.error(f"{path}: file not found")
    except UnicodeDecodeError as exc:
        report.error(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start}); save it as UTF-8")
    except OSError as exc:
        report.error(f"{path}: unreadable ({first_line(exc)})")
    return None
