"""Errors that the CLI reports as a one-line message with exit code 2 (no traceback)."""


class UsageError(ValueError):
    """Bad input from the user: a path, a name, an option. The message says what and what to do."""


class UsageTypeError(UsageError, TypeError):
    """A :class:`UsageError` for an argument of the wrong type (``predict(None)``, ``predict_frame([...])``):
    also a TypeError, as Python's own error for it was, so ``except TypeError`` keeps working."""
