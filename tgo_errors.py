"""The one exception type for user mistakes: the CLI prints its message on one line and exits 2."""


class UsageError(Exception):
    """A problem with what the user asked for (bad flag, missing file, foreign checkpoint...).

    Raise it with a message that names the problem and, where possible, the fix.
    """
