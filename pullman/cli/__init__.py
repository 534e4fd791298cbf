"""The command line: a thin click shell over the library, one module per group of commands."""

from pullman.cli import (  # noqa: F401 - importing registers commands
    admin,
    bundle,
    get_cmd,
    jobs,
    link_cmd,
    store,
    web,
)
from pullman.cli.app import cli, main, run_async

__all__ = ["cli", "main", "run_async"]
