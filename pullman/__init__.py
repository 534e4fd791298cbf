"""pullman: a resilient model download manager."""

__version__ = "0.1.0"
