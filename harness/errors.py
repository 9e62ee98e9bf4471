"""User-facing errors.

A `HarnessError` carries a one-paragraph message that says what was wrong and what to do; the CLI prints
it without a traceback and exits with `exit_code`. Anything else that escapes is a bug and keeps its
traceback.
"""


class HarnessError(Exception):
    """An error caused by the user's input or environment, with a message that says how to fix it."""

    exit_code = 2


class ConfigError(HarnessError):
    """A suite file, a `--set` override or a method/task option is invalid."""


class RegistryError(HarnessError, KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class RecordError(HarnessError):
    """A result record (or a reference file) is missing, corrupt or not ours."""


class DataError(HarnessError):
    """A dataset is missing, incomplete or inconsistent on disk."""


class WeightsError(HarnessError):
    """Model weights were asked for but cannot be found or loaded."""
