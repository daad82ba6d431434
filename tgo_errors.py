"""User mistakes: the one exception type (the CLI prints its message on one line and exits 2) and its wording."""
from pathlib import Path


class UsageError(Exception):
    """A problem with what the user asked for (bad flag, missing file, foreign checkpoint...).

    Raise it with a message that names the problem and, where possible, the fix.
    """


def unreadable_path(path: Path) -> str:
    """Why `path`, which is not a regular file, cannot be read: 'no such file' or 'not a regular file'."""
    return "not a regular file" if Path(path).exists() else "no such file"
