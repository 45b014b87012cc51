"""Human durations and sizes in config files: ``30s``, ``10m``, ``8h``, ``90d``, ``10MiB``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+)(B|KiB|MiB|GiB|KB|MB|GB)?")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``; plain numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m, 8h or 90d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    match = _DURATION.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 500ms, 30s, 10m, 8h or 90d")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(value: str | int) -> int:
    """Bytes in ``value``; plain numbers are bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; write e.g. 512KiB or 10MiB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a size; write e.g. 512KiB, 10MiB or 1GiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]
