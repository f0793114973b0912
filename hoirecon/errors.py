"""Error types for mistakes a user can make; the CLI prints them as one line (no traceback)."""

from __future__ import annotations


class HoireconError(Exception):
    """A user-facing error: bad input, bad config, missing component.

    `hint` is an optional second line telling the user what to do about it.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class ConfigError(HoireconError):
    """A config file or override is malformed or does not validate."""


class RegistryError(HoireconError):
    """A component name is unknown, duplicated or badly declared."""


class PluginError(HoireconError):
    """A plugin failed to import or to register."""


class DataError(HoireconError):
    """An input file (clip, mesh, checkpoint) is missing or malformed."""


class DivergedError(HoireconError):
    """The optimisation produced non-finite values (a loss or parameters)."""


class OutOfSpaceError(HoireconError):
    """A write failed for lack of space (a full disk, a quota or a file-size limit); nothing was replaced."""


class Interrupted(HoireconError):
    """The user interrupted a run (Ctrl-C); its checkpoint was saved (exit code 130)."""


class NotBuiltError(HoireconError):
    """A capability the CLI advertises that is not implemented yet (exit code 2)."""


class HoireconWarning(UserWarning):
    """A warning meant for the user; the CLI prints it as one line."""


class PluginLoadWarning(HoireconWarning):
    """An installed plugin failed to import or register."""
