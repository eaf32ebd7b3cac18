"""The ``moeplan`` command line: click lives only in this package (one module per command)."""

from planner.cli.root import main

__all__ = ["main"]
