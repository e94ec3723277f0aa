"""The one error family of aekit.

Every mistake a user can make (bad data, a bad option, a missing run directory)
raises a subclass of :class:`AekitError` carrying one clear sentence. The CLI
prints it as ``aekit: error: ...`` and exits with status 2.
"""

from __future__ import annotations


class AekitError(Exception):
    """Base class of every error aekit raises for a user mistake."""


class DataError(AekitError, ValueError):
    """The input data cannot be read or is not valid (names the file and the problem)."""


class ConfigError(AekitError, ValueError):
    """An option or a configuration value is invalid."""


class RunError(AekitError):
    """A run directory is missing, incomplete, or corrupted."""


class TrainingError(AekitError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""
