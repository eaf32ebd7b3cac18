"""The root ``moeplan`` group; each command lives in its own module of this package."""

from __future__ import annotations

import click

from planner import __version__
from planner.cli.catalog import catalog
from planner.cli.compare import compare_cmd
from planner.cli.cost import cost
from planner.cli.evaluate import evaluate
from planner.cli.loads import loads
from planner.cli.place import place
from planner.cli.plan import plan
from planner.cli.schedule import schedule


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="moeplan")
def main() -> None:
    """Plan Mixture-of-Experts LLM deployments on GPU and NPU clusters."""


for _command in (evaluate, plan, schedule, place, loads, compare_cmd, cost, catalog):
    main.add_command(_command)
