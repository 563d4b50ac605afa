"""A counter-based random stream for the numba data generators (SplitMix64, Steele et al. 2014).

Every sample ``i`` of a batch gets its own stream seeded from ``(seed, i)``, so a sample depends
only on its seed and index: generating 10 samples gives the first 10 of 100, and batches can be
split across processes. The state is a one-element ``uint64`` array.
"""
from __future__ import annotations

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def mix(z):
    """The SplitMix64 finaliser: a bijective scramble of a 64-bit word."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def next_u64(st):
    st[0] += GOLDEN
    return mix(st[0])


@njit(cache=True, inline="always")
def randbelow(st, n):
    """An integer in [0, n) by multiply-shift (bias below n / 2**32, negligible here)."""
    x = next_u64(st) >> _S32
    return np.int64((x * np.uint64(n)) >> _S32)


@njit(cache=True, inline="always")
def uniform(st):
    """A float in [0, 1) with 53 random bits."""
    return np.float64(next_u64(st) >> _S11) * _INV53
