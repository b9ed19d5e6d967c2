"""Per-example outcomes in a run record, compactly: 0/1 outcomes as a bit string, errors as
little-endian float32, both base64. 100,000 examples take ~17 kB (bits) or ~530 kB (errors)."""

from __future__ import annotations

import array
import base64
import sys
from typing import Any


def encode(values: tuple[float, ...]) -> dict[str, Any]:
    if all(v in (0.0, 1.0) for v in values):
        packed = bytearray((len(values) + 7) // 8)
        for index, value in enumerate(values):
            if value:
                packed[index >> 3] |= 1 << (index & 7)
        return {"n": len(values), "bits": base64.b64encode(bytes(packed)).decode("ascii")}
    floats = array.array("f", values)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
        floats.byteswap()
    return {"n": len(values), "f32": base64.b64encode(floats.tobytes()).decode("ascii")}


def decode(data: Any) -> tuple[float, ...]:
    """The outcomes back; raises ValueError when the data is malformed or the length wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("n"), int) or data["n"] < 0:
        raise ValueError("expected {n: a count >= 0, bits|f32: base64 text}")
    n = data["n"]
    for key in ("bits", "f32"):
        if key in data and not isinstance(data[key], str):
            raise ValueError(f"expected base64 text in {key!r}, got {type(data[key]).__name__}")
    if "bits" in data:
        packed = base64.b64decode(data["bits"], validate=True)
        if len(packed) != (n + 7) // 8:
            raise ValueError(f"{len(packed)} bytes cannot hold {n} outcomes")
        return tuple(float((packed[i >> 3] >> (i & 7)) & 1) for i in range(n))
    if "f32" in data:
        floats = array.array("f")
        floats.frombytes(base64.b64decode(data["f32"], validate=True))
        if sys.byteorder != "little":  # pragma: no cover - big-endian hosts only
            floats.byteswap()
        if len(floats) != n:
            raise ValueError(f"{len(floats)} values where {n} were recorded")
        return tuple(floats)
    raise ValueError("expected a 'bits' or 'f32' field")
