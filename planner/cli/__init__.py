"""The ``moeplan`` command line: click lives only in this package (one module per command)."""

from planner.cli.app import guarded
from planner.cli.root import main as _root

main = guarded(_root)
"""The root group behind the abort path's last guard: every failure is one stderr line, exit 1 or 2."""

__all__ = ["main"]
