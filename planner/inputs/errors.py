"""The bad-input error of the input edge (the CLI turns it into exit code 2)."""

from __future__ import annotations

from planner.inputs import reader


class ScenarioError(Exception):
    """Bad input: names the key path, the value, and what would be accepted."""

    def __init__(self, path: str, value: object, accepted: str) -> None:
        self.path, self.value, self.accepted = path, value, accepted
        super().__init__(f"{path}: got {reader.shorten(value)}; accepted: {reader.shorten_text(accepted, 400)}")
