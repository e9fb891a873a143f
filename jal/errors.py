"""Errors jal raises on bad input.

Every message says what was wrong and what to do about it. Each class subclasses
the builtin a caller would expect (`ValueError`, `FileNotFoundError`), so code
that catches those keeps working.
"""


class JalError(Exception):
  """Base class of every error jal raises on purpose."""


class ConfigError(JalError, ValueError):
  """A config field or argument is out of its allowed range."""


class UnknownNameError(ConfigError):
  """A dataset, model or strategy name is not registered."""


class DatasetNotFoundError(JalError, FileNotFoundError):
  """Dataset files are not where jal looked for them."""


class CorruptDatasetError(JalError, ValueError):
  """Dataset files exist but their contents are malformed or truncated."""


class CheckpointError(JalError, ValueError):
  """A work directory holds a checkpoint that cannot be resumed."""


class DivergedError(JalError, RuntimeError):
  """Training gave a model with NaN or infinite parameters or predictions."""


class NoResultsError(JalError, FileNotFoundError):
  """A study directory is missing or holds no finished experiment."""


class CorruptResultsError(JalError, ValueError):
  """A work or study directory holds a record file that cannot be read."""
