"""The ``launch`` block evaluate and plan documents carry with ``--emit ENGINE`` (README "Launch configs"); built
by :func:`planner.emit.launch_document`."""

from __future__ import annotations

from planner.documents.base import CommandRole, Count, Document, Engine, field


class LaunchCommandDoc(Document):
    """One command line to run on one node."""

    role: CommandRole = field("`aggregated`, `prefill`, `decode` or `router` (the request front end of a "
                              "disaggregated plan).")
    replica: Count = field("Replica index of the instance within its role, from 0.")
    node_rank: Count = field("Rank of the node inside its instance, an index (0 = head).")
    node: Count = field("Cluster node index the line runs on (pools are laid out on consecutive nodes).")
    argv: list[str] = field("The command as an argument vector; `${VAR}` references are left for the shell to "
                            "expand.")
    env: dict[str, str] = field("Environment variables set on the command line (name -> value).")
    files: dict[str, str] = field("Config files to write before running (file name -> content).")
    notes: list[str] = field("Caveats printed as comments above the line.")
    shell: str = field("env and argv as one shell line (shlex-quoted; `${VAR}` kept expandable).")


class LaunchBlock(Document):
    """Launch lines that realise the plan in one serving engine (`--emit ENGINE`; README 'Launch configs')."""

    engine: Engine = field("Serving engine.")
    version: str = field("Engine version the flags were read from.")
    sources: list[str] = field("Where the flag names were taken from.")
    variables: dict[str, str] = field("Environment variables the commands read and the user must set (name -> what "
                                      "to set it to), in first-use order.")
    notes: list[str] = field("Plan parts the engine takes no setting for.")
    commands: list[LaunchCommandDoc] = field("Commands, head node first.")
