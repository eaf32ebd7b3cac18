"""Unit parsing at the YAML edge: hand-derived values."""

import pytest

from planner.inputs import units


@pytest.mark.parametrize(("text", "expected"), [
    ("80 GiB", 80 * 2**30),       # binary prefix: 80 x 1024^3
    ("141 GB", 141e9),            # decimal prefix
    ("1.5TiB", 1.5 * 2**40),
    ("512 B", 512.0),
])
def test_parse_bytes(text, expected):
    assert units.parse_bytes(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "expected"), [
    ("900 GB/s", 900e9),
    ("400 Gb/s", 50e9),           # 400e9 bits / 8
    ("200 Gbps", 25e9),
    ("4.8 TB/s", 4.8e12),
])
def test_parse_bandwidth(text, expected):
    assert units.parse_bandwidth(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "expected"), [("50 ms", 0.05), ("2 s", 2.0), ("3 us", 3e-6), ("500 ns", 5e-7)])
def test_parse_seconds(text, expected):
    assert units.parse_seconds(text) == pytest.approx(expected)


def test_parse_flops():
    assert units.parse_flops("989 TFLOP/s") == pytest.approx(989e12)
    assert units.parse_flops("1504 TOPS") == pytest.approx(1504e12)


@pytest.mark.parametrize("bad", ["80", "80 gigs", "fast", 80, "GB"])
def test_bad_quantity_says_what_is_accepted(bad):
    with pytest.raises(units.UnitError) as e:
        units.parse_bytes(bad)
    assert "GiB" in e.value.accepted


def test_format_is_explicit_about_binary_units():
    assert units.fmt_bytes(80 * 2**30) == "80.0 GiB"
    assert units.fmt_seconds(0.05) == "50.00 ms"
