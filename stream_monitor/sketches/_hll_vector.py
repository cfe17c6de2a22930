"""DataSketches HyperLogLog registers for a whole float64 column at once, in numpy.

Why: ``hll_sketch.update`` takes one value per call, ~90 ns of Python and binding
overhead per value, which was a third of the engine's time on numeric columns.
The register an HLL keeps for a value depends only on the value's hash, and
registers merge by maximum, so a column's registers can be computed with vector
operations and folded into the DataSketches sketch with one union.

The hash is DataSketches' own: MurmurHash3_x64_128 of the 8 bytes of the double
(``-0.0`` folded into ``0.0``), seed 9001; the register index is the low ``lg_k``
bits of the first half, the value the leading zeros of the second half plus one
(capped at 63). ``tests/sketches/test_hll_vector.py`` checks the registers equal
those of ``hll_sketch`` updated one value at a time.

The registers become a sketch through DataSketches' serialised HLL_8 layout
(a 40-byte preamble, then one byte per register) marked *out of order*, which is
what a union result is too: the estimate is DataSketches' composite estimator
(error bound ``get_rel_err(unioned=True)``) rather than HIP.
"""
from __future__ import annotations

import struct

import numpy as np
from datasketches import hll_sketch

_U = np.uint64
_C1, _C2 = _U(0x87C37B91114253D5), _U(0x4CF5AD432745937F)
_F1, _F2 = _U(0xFF51AFD7ED558CCD), _U(0xC4CEB9FE1A85EC53)
_SEED = 9001
_S33, _S31, _S11, _S52 = _U(33), _U(31), _U(11), _U(52)

# Serialised HLL preamble (DataSketches HllSketch, serial version 1), HLL mode, HLL_8 target.
_PREAMBLE_INTS = 10
_SER_VER = 1
_FAMILY_HLL = 7
_FLAG_OUT_OF_ORDER = 0x10
_MODE_HLL_8 = 2 | (2 << 2)
_TAIL = struct.Struct("<dddii")
_CHUNK = 1 << 15


def _fmix64(k: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser, in place (``tmp``: scratch of the same size, so no array is allocated)."""
    np.right_shift(k, _S33, out=tmp)
    k ^= tmp
    k *= _F1
    np.right_shift(k, _S33, out=tmp)
    k ^= tmp
    k *= _F2
    np.right_shift(k, _S33, out=tmp)
    k ^= tmp
    return k


def hash_doubles(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MurmurHash3_x64_128 (seed 9001) of each value's 8 bytes: the two 64-bit halves.

    Every step works in place on two arrays and one scratch array: the hash is about
    twenty passes over the values, and allocating a temporary for each was half its cost.
    """
    h1 = np.add(np.ascontiguousarray(values, dtype=np.float64), 0.0).view(np.uint64)  # -0.0 + 0.0 == +0.0
    tmp = np.empty_like(h1)
    h1 *= _C1
    np.right_shift(h1, _S33, out=tmp)  # rotl(k1, 31)
    h1 <<= _S31
    h1 |= tmp
    h1 *= _C2
    seed = _U(_SEED ^ 8)  # h1 = h2 = seed; h1 ^= k1; both ^= length (8)
    h1 ^= seed
    h1 += seed  # h1 += h2
    h2 = h1 + seed  # h2 += h1
    _fmix64(h1, tmp)
    _fmix64(h2, tmp)
    h1 += h2
    h2 += h1
    return h1, h2


def registers(values: np.ndarray, lg_k: int, rows: np.ndarray | None = None, count: int = 1) -> np.ndarray:
    """HLL register values (uint8) of a column of finite doubles: 2**lg_k of them.

    With ``rows`` (the sketch each value belongs to, 0 .. count-1), the registers of
    ``count`` sketches at once, as a (count, 2**lg_k) array. Values are hashed in
    chunks that stay in cache (each hashing step is a pass over the chunk). Repeated
    values may be passed: they hash alike, and registers keep maxima.
    """
    size = 1 << lg_k
    out = np.zeros(count * size, dtype=np.uint8)
    for at in range(0, values.size, _CHUNK):
        h1, h2 = hash_doubles(values[at:at + _CHUNK])
        h1 &= _U(size - 1)
        slot = h1.view(np.int64)
        if rows is not None:
            slot += rows[at:at + _CHUNK] * size
        np.maximum.at(out, slot, _rank(h2))
    return out.reshape(count, size) if rows is not None else out


def _rank(h2: np.ndarray) -> np.ndarray:
    """Leading zeros of each 64-bit hash plus one, at most 63, as uint8.

    Bit length from the float exponent: shifting by 11 first keeps the conversion exact
    (53 bits), and then the biased exponent ``e`` of ``h2 >> 11`` gives 64 - (e - 1022 + 11)
    leading zeros. The rare ``h2 < 2**11`` (the shifted value is 0) is done exactly apart.
    """
    top = h2 >> _S11
    exponent = top.astype(np.float64).view(np.uint64)
    exponent >>= _S52
    low = exponent == 0
    value = np.subtract(_U(1076), exponent, out=exponent)  # clz + 1, within 1 .. 53 when top > 0
    if low.any():
        value[low] = np.minimum(64 - np.frexp(h2[low].astype(np.float64))[1], 62) + 1
    return value.astype(np.uint8)


def sketch_from_registers(regs: np.ndarray, lg_k: int) -> hll_sketch:
    """An out-of-order HLL_8 sketch holding exactly these registers."""
    inv = np.ldexp(1.0, -regs.astype(np.int64))
    high = regs >= 32
    head = bytes([_PREAMBLE_INTS, _SER_VER, _FAMILY_HLL, lg_k, 0, _FLAG_OUT_OF_ORDER, 0, _MODE_HLL_8])
    tail = _TAIL.pack(0.0, float(inv[~high].sum()), float(inv[high].sum()), int(np.count_nonzero(regs == 0)), 0)
    return hll_sketch.deserialize(head + tail + regs.astype(np.uint8).tobytes())
