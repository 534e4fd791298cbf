"""The command line: a thin click shell over the library, one module per group of commands."""

from pullman.cli import admin, bundle, get_cmd, jobs, store  # noqa: F401 - importing registers commands
from pullman.cli.app import cli, main, run_async

__all__ = ["cli", "main", "run_async"]
