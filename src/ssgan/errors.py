"""The typed errors ssgan raises for problems a user can fix (bad files, bad runs, bad options).

Every one carries a message that names the thing at fault and the reason, so the CLI can print it
as a single line.
"""

from __future__ import annotations

from pathlib import Path


class SSGANError(Exception):
    """Base class of errors that the CLI reports as one line without a traceback."""


class AudioError(SSGANError, ValueError):
    """A file that cannot be used as audio: missing, unreadable, empty, truncated, silent, NaN."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[AudioError], tuple[str, str]]:
        # Rebuilt from its two arguments (the default would pass the one message): it crosses
        # process boundaries (torchrun ranks) intact.
        return type(self), (self.path, self.reason)


class DatasetError(SSGANError, ValueError):
    """A dataset tree or labels file that does not have the expected layout or content."""


class CheckpointError(SSGANError, ValueError):
    """A run directory or checkpoint that is missing, truncated, corrupted or of the wrong kind."""


class TrainingDivergedError(SSGANError):
    """A training whose loss or weights became non-finite (NaN or inf)."""


class OutputError(SSGANError):
    """An output path that would overwrite an input or an existing result."""
