"""`tgo`: the command-line entry point. Each command is a thin wrapper over a package function.

User mistakes raise `tgo_errors.UsageError`; `user_errors` turns them into one line on stderr and exit code 2.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, List, Optional

import typer

from tgo_errors import UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Threshold Guarding Optimization: train robust SNNs, export to Loihi, verify bit-exactly.")


def user_errors(command: Callable) -> Callable:
    """Run `command`; a UsageError becomes `error: ...` on stderr and exit code 2 (never a traceback)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UsageError as err:
            typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2)
    return wrapper


if __name__ == "__main__":
    app()
