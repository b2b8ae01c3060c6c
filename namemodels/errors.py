"""Errors that the CLI reports as a one-line message with exit code 2 (no traceback)."""


class UsageError(ValueError):
    """Bad input from the user: a path, a name, an option. The message says what and what to do."""
