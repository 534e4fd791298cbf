"""The command line: a thin click shell over the library, one module per group of commands."""

from pullman.cli import get_cmd, store  # noqa: F401 - importing registers the commands
from pullman.cli.app import cli, main, run_async

__all__ = ["cli", "main", "run_async"]
