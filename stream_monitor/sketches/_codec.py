"""A tiny binary envelope shared by the sketches' ``to_bytes`` / ``from_bytes``.

A serialised sketch is ``MAGIC | kind | parts``, each part a name and a byte string
with length prefixes. Native sketches (KLL, t-digest, HLL) put their own
DataSketches serialisation in a part; numpy arrays go in as little-endian bytes.
The envelope is what partitions and instances exchange when they publish partial
window sketches, so it is versioned and refuses anything it did not write.
"""
from __future__ import annotations

import struct

import numpy as np

MAGIC = b"SMK1"


def pack(kind: str, parts: dict[str, bytes]) -> bytes:
    out = [MAGIC, _name(kind), struct.pack("<H", len(parts))]
    for name, payload in parts.items():
        out += [_name(name), struct.pack("<I", len(payload)), payload]
    return b"".join(out)


def unpack(data: bytes, kind: str) -> dict[str, bytes]:
    """The parts of a blob written by :func:`pack` for `kind`; ValueError on anything else."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC:
        raise ValueError("not a stream-monitor sketch (bad magic bytes)")
    found, pos = _read_name(view, 4)
    if found != kind:
        raise ValueError(f"expected a serialised {kind}, got {found}")
    (count,) = struct.unpack_from("<H", view, pos)
    pos += 2
    parts: dict[str, bytes] = {}
    for _ in range(count):
        name, pos = _read_name(view, pos)
        (size,) = struct.unpack_from("<I", view, pos)
        pos += 4
        parts[name] = bytes(view[pos:pos + size])
        pos += size
    if pos != len(view):
        raise ValueError(f"serialised {kind} has {len(view) - pos} trailing bytes")
    return parts


def floats(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def ints(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<i8").tobytes()


def read_floats(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f8").astype(np.float64)


def read_ints(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i8").astype(np.int64)


def _name(name: str) -> bytes:
    raw = name.encode()
    if len(raw) > 255:
        raise ValueError(f"part name too long: {name[:40]}...")
    return struct.pack("<B", len(raw)) + raw


def _read_name(view: memoryview, pos: int) -> tuple[str, int]:
    size = view[pos]
    return bytes(view[pos + 1:pos + 1 + size]).decode(), pos + 1 + size
