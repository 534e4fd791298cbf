"""The command line: a thin click shell over the library, one module per group of commands.

The modules are imported when their command is asked for (:class:`pullman.cli.app.LazyGroup`);
:func:`load_all` imports every one (for tools that walk the whole command tree).
"""

import importlib

from pullman.cli.app import COMMANDS, cli, main, run_async


def load_all() -> None:
    """Import every command module, so ``cli.commands`` holds every command."""
    for module in sorted(set(COMMANDS.values())):
        importlib.import_module(f"pullman.cli.{module}")


__all__ = ["cli", "load_all", "main", "run_async"]
