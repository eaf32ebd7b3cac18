"""``moeplan catalog devices|models``: what is bundled, with sources (no solver is imported)."""

from __future__ import annotations

import click

from planner.cli import app


@click.group()
def catalog() -> None:
    """What is bundled, with sources."""


@catalog.command("devices")
@click.option("--json", "as_json", is_flag=True, help="Print the devices (schema moeplan.catalog_devices/1) as JSON.")
def catalog_devices(as_json: bool) -> None:
    """Devices and every number's source and confidence."""
    from planner.render import catalog_view
    catalog_view.show_devices(app.out, as_json)


@catalog.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the models (schema moeplan.catalog_models/1) as JSON.")
def catalog_models(as_json: bool) -> None:
    """Models with their shapes and parameter counts."""
    from planner.render import catalog_view
    catalog_view.show_models(app.out, as_json)
