"""User-facing errors: run.py prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (a bad flag, bad data, a missing file).

    The message names the problem and, where possible, the fix.
    """


class ConfigError(UserError):
    """A flag value, or a combination of flags, that cannot work."""


class DataError(UserError):
    """A dataset that cannot be found, read or used as asked."""


class CheckpointError(UserError):
    """A checkpoint that is missing or does not fit the model asked for."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or Inf loss."""
