"""``python -m pullman`` is the ``pullman`` command."""

from pullman.cli import main

main()
