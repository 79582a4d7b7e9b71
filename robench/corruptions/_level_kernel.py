"""The numba-compiled loop behind ``robench.corruptions.levels.sample_levels`` (imported on first use).

Its random numbers come from SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014; the generator of Java's SplittableRandom, which passes BigCrush), written
out here because no library generator can be called per value inside a compiled loop at this cost:
numba's ``np.random`` (MT19937) takes about 20 ns per draw on the 2-core reference machine, and
drawing the bits in bulk with NumPy's SFC64 first costs 2.5 ns per value plus 1.3 ns of seeding per
chunk, against about 1.1 ns per value here. Each 64-bit output gives two 32-bit numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(state):  # type: ignore[no-untyped-def]
    """SplitMix64's output for ``state`` (already advanced by the golden-ratio increment)."""
    z = (state ^ (state >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _pick(v, r, packed, values, full, half, tol):  # type: ignore[no-untyped-def]
    """(output value, whether ``v`` is a level) for input ``v`` and 32 random bits ``r``."""
    s = v * full
    level = np.int32(s + half)
    # np.float32(level) is exact for any level and keeps float32 arithmetic in float32; NaN gives False
    ok = (abs(s - np.float32(level)) <= tol) and (0 <= level <= 255)
    j = r >> np.uint32(24)
    entry = packed[(np.uint32(level & 0xFF) << np.uint32(8)) | j]
    keep = np.uint32((r & np.uint32(0xFFFFFF)) < (entry >> np.uint32(8)))
    alias = entry & np.uint32(0xFF)
    return values[alias ^ ((alias ^ j) & (np.uint32(0) - keep))], ok


def _sample(x, out, packed, values, seed, full, half, tol):  # type: ignore[no-untyped-def]
    """Two values per SplitMix64 output; stops with False at the first value that is not a level.
    ``full``, ``half``, ``tol`` (255, 0.5, 1e-3) come in ``x``'s dtype so float32 stays float32."""
    state = np.uint64(seed)
    n = x.size
    for h in range(n // 2):
        state += _GAMMA
        bits = mix(state)
        a, ok_a = pick(x[2 * h], np.uint32(bits >> np.uint64(32)), packed, values, full, half, tol)
        b, ok_b = pick(x[2 * h + 1], np.uint32(bits & np.uint64(0xFFFFFFFF)), packed, values, full, half, tol)
        if not (ok_a and ok_b):
            return False
        out[2 * h] = a
        out[2 * h + 1] = b
    if n % 2:
        state += _GAMMA
        a, ok_a = pick(x[n - 1], np.uint32(mix(state) >> np.uint64(32)), packed, values, full, half, tol)
        if not ok_a:
            return False
        out[n - 1] = a
    return True


mix = njit(inline="always")(_mix)
pick = njit(inline="always")(_pick)
try:  # compiled code cached next to this file, or in numba's user-wide cache when that is read-only
    sample = njit(nogil=True, cache=True)(_sample)
except RuntimeError:  # pragma: no cover - no writable cache location
    sample = njit(nogil=True)(_sample)
