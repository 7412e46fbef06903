"""The one exception type the CLI turns into a one-line message and exit status 2."""


class UsageError(Exception):
    """Bad input from the user: unknown model, malformed resolution, unreadable results file, ..."""
