"""The exact law of the reference's uint8 output for each uint8 input level, and a fast sampler for it.

The four noise corruptions act on each value independently, and the reference returns
``np.uint8(clip(f(x)) * 255)`` for an input ``x = k / 255``. So for each input level ``k`` (0..255)
the output level ``m`` (0..255) has a fixed discrete law ``P[k, m]``, which this module computes in
float64 from the same formulas (Φ is the standard normal CDF, ``y`` the clipped value):

* gaussian_noise: ``y = x + c·z``         P(m ≤ M) = Φ(((M+1)/255 − k/255) / c)           for M < 255
* speckle_noise:  ``y = x·(1 + c·z)``     P(m ≤ M) = Φ(((M+1)/k − 1) / c) for k > 0; m = 0 for k = 0
* shot_noise:     ``y = Poisson(x·c)/c``  the Poisson(k/255·c) masses of the counts p, binned by
  ``np.uint8(clip(p / c, 0, 1) * 255)`` (computed like the reference, in float64)
* impulse_noise:  m = k with probability 1 − c, 0 and 255 with probability c/2 each

Sampling ``m`` from ``P[k]`` with Walker's alias method needs one 32-bit random number and one
table lookup per value, whatever the corruption: 8 bits pick a column ``j`` of the row, 24 bits
decide between ``j`` and its alias. Each table entry packs ``threshold << 8 | alias`` with the
threshold in units of 2⁻²⁴, so every output probability is within about 2⁻²⁴ of ``P`` (the tests allow 1e-7).

Why this exists rather than the formulas in torch: on the CPU, torch's generator draws one value
at a time (6-12 ns per normal or uniform on the 2-core reference machine), which alone costs more
than the 20× speed target allows. Here drawing and looking up is one numba-compiled loop, about
4 ns per value on one thread of that machine (``robench.corruptions._level_kernel``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

LEVELS = 256
_THRESHOLD_BITS = 24


def level_law(name: str, c: float) -> np.ndarray:
    """``P[k, m]``: probability that input level ``k`` comes out as level ``m``; 256×256 float64, rows sum to 1."""
    k = np.arange(LEVELS, dtype=np.float64)[:, None]
    upper = np.arange(1, LEVELS, dtype=np.float64)[None, :]  # M + 1 for M = 0..254
    if name == "gaussian_noise":
        cdf = _normal_cdf((upper / 255 - k / 255) / c)
    elif name == "speckle_noise":
        with np.errstate(divide="ignore"):
            cdf = _normal_cdf((upper / k - 1) / c)  # k = 0 gives +inf: everything in m = 0
    elif name == "shot_noise":
        return _shot_law(float(c))
    elif name == "impulse_noise":
        law = np.zeros((LEVELS, LEVELS))
        law[np.arange(LEVELS), np.arange(LEVELS)] = 1.0 - c
        law[:, 0] += c / 2
        law[:, LEVELS - 1] += c / 2
        return law
    else:
        raise ValueError(f"no level law for {name!r}")
    cdf = np.concatenate([np.zeros((LEVELS, 1)), cdf, np.ones((LEVELS, 1))], axis=1)
    return np.diff(cdf, axis=1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return torch.special.ndtr(torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))).numpy()


def _shot_law(c: float) -> np.ndarray:
    counts = np.arange(int(np.ceil(c)), dtype=np.float64)  # counts below c; the rest clip to 255
    bins = (np.clip(counts / c, 0, 1) * 255).astype(np.uint8)  # the reference's truncation, on the same float64 values
    rate = (np.arange(LEVELS, dtype=np.float64) / 255.0 * c)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_mass = counts * np.log(rate) - rate - torch.lgamma(torch.from_numpy(counts + 1)).numpy()
    mass = np.exp(log_mass)
    mass[0] = 0.0
    mass[0, 0] = 1.0  # rate 0: always 0 photons
    law = np.zeros((LEVELS, LEVELS))
    np.add.at(law.T, bins, mass.T)
    law[:, LEVELS - 1] += np.clip(1.0 - mass.sum(axis=1), 0.0, None)
    return law


def alias_table(law: np.ndarray) -> np.ndarray:
    """Walker alias tables of each row of ``law`` (256×256), packed as uint32[65536] ``threshold << 8 | alias``.

    Entry ``k·256 + j``: keep ``j`` when 24 random bits are below ``threshold``, else output ``alias``.
    Built with Vose's pairing of a deficient and a surplus column, all rows at once.
    """
    rows, cols = law.shape
    q = law / law.sum(axis=1, keepdims=True) * cols
    keep = np.ones((rows, cols))
    alias = np.tile(np.arange(cols), (rows, 1))
    done = np.zeros((rows, cols), dtype=bool)
    every = np.arange(rows)
    for _ in range(cols - 1):
        small = np.where(done, np.inf, q).argmin(axis=1)
        large_q = np.where(done, -np.inf, q)
        large_q[every, small] = -np.inf
        large = large_q.argmax(axis=1)
        active = q[every, small] < 1.0
        if not active.any():
            break
        r, s, big = every[active], small[active], large[active]
        keep[r, s] = q[r, s]
        alias[r, s] = big
        done[r, s] = True
        q[r, big] -= 1.0 - q[r, s]
    threshold = np.round(np.clip(keep, 0.0, 1.0) * 2**_THRESHOLD_BITS)
    always = threshold >= 2**_THRESHOLD_BITS  # keep j whatever the bits: make j its own alias
    alias[always] = np.broadcast_to(np.arange(cols), (rows, cols))[always]
    threshold = np.minimum(threshold, 2**_THRESHOLD_BITS - 1).astype(np.uint32)
    return ((threshold << np.uint32(8)) | alias.astype(np.uint32)).ravel()


def alias_probabilities(packed: np.ndarray) -> np.ndarray:
    """The 256×256 law that ``packed`` samples (to check a table against ``level_law``)."""
    threshold = (packed >> np.uint32(8)).reshape(LEVELS, LEVELS) / 2**_THRESHOLD_BITS
    alias = (packed & np.uint32(0xFF)).reshape(LEVELS, LEVELS)
    law = threshold / LEVELS
    for k in range(LEVELS):
        np.add.at(law[k], alias[k], (1.0 - threshold[k]) / LEVELS)
    return law


@lru_cache(maxsize=64)
def packed_table(name: str, c: float) -> np.ndarray:
    """``alias_table(level_law(name, c))``, built once per process (≈ 0.1 s each)."""
    table = alias_table(level_law(name, c))
    table.setflags(write=False)
    return table


def sample_levels(x: np.ndarray, out: np.ndarray, packed: np.ndarray, seed: int) -> bool:
    """Write into ``out`` (float, like ``x``) the level ``m / 255`` drawn for each ``x = k / 255``.

    ``x``, ``out``: 1-D float32 or float64 arrays of equal length; ``seed``: the SplitMix64 state
    (0 ≤ seed < 2⁶⁴) the random numbers start from. Returns False, with ``out`` written but
    meaningless, when some value is not within 1e-3 of a level in [0, 255] or is NaN (the caller
    then uses the formulas). Releases the GIL.
    """
    from robench.corruptions._level_kernel import sample

    real = x.dtype.type
    values = (np.arange(LEVELS, dtype=x.dtype) / real(255)).astype(x.dtype)
    return bool(sample(x, out, packed, values, np.uint64(seed), real(255), real(0.5), real(1e-3)))
