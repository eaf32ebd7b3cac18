"""Parse quantities with units once, at the YAML / command-line edge; format them at the report edge.

Binary prefixes (KiB, MiB, GiB, TiB) are powers of 1024; decimal ones (kB, MB, GB, TB) powers of 1000.
Bandwidths in bits ("400 Gb/s", "200 Gbps") are divided by 8; in bytes ("900 GB/s") taken as written.
"""

from __future__ import annotations

import re

_BYTE_PREFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_SI_PREFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "min": 60.0}

_NUM = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"


class UnitError(ValueError):
    """A quantity string that does not parse; ``accepted`` says what would."""

    def __init__(self, value: object, accepted: str) -> None:
        super().__init__(f"got {value!r}; accepted: {accepted}")
        self.value = value
        self.accepted = accepted


def _match(pattern: str, text: object, accepted: str) -> re.Match[str]:
    if not isinstance(text, str):
        raise UnitError(text, accepted)
    m = re.fullmatch(_NUM + pattern + r"\s*", text)
    if not m:
        raise UnitError(text, accepted)
    return m


def parse_bytes(text: object) -> float:
    """"80 GiB" -> 85899345920.0; "141 GB" -> 1.41e11."""
    accepted = "a size such as '80 GiB' or '141 GB' (B, kB/KiB, MB/MiB, GB/GiB, TB/TiB)"
    m = _match(r"(|k|K|M|G|T|P|Ki|Mi|Gi|Ti|Pi)B", text, accepted)
    return float(m.group(1)) * _BYTE_PREFIX[m.group(2)]


def parse_bandwidth(text: object) -> float:
    """"900 GB/s" -> 9e11 bytes/s; "400 Gb/s" or "400 Gbps" -> 5e10 bytes/s."""
    accepted = "a bandwidth such as '900 GB/s', '400 Gb/s' or '200 Gbps'"
    m = _match(r"(|k|K|M|G|T|Ki|Mi|Gi|Ti)(B/s|b/s|Bps|bps)", text, accepted)
    value = float(m.group(1)) * _BYTE_PREFIX[m.group(2)]
    return value / 8 if m.group(3) in ("b/s", "bps") else value


def parse_seconds(text: object) -> float:
    """"50 ms" -> 0.05; "3 us" -> 3e-6; "2 s" -> 2.0."""
    accepted = "a time such as '2 s', '50 ms', '3 us' or '500 ns'"
    m = _match(r"(s|ms|us|µs|ns|min)", text, accepted)
    return float(m.group(1)) * _TIME[m.group(2)]


def parse_flops(text: object) -> float:
    """"989 TFLOP/s" (or TFLOPS, TOPS) -> 9.89e14 operations/s."""
    accepted = "a rate such as '989 TFLOP/s', '1979 TFLOPS' or '1504 TOPS'"
    m = _match(r"(|k|M|G|T|P)(FLOP/s|FLOPS|flops|OPS|OP/s)", text, accepted)
    return float(m.group(1)) * _SI_PREFIX[m.group(2)]


def fmt_bytes(value: float) -> str:
    """Binary units for memory, always explicit: '61.3 GiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} us"


def fmt_bandwidth(value: float) -> str:
    return f"{value / 1e9:.0f} GB/s"
