"""Build robench/assets/cifar10_test_sample.npz from the shared lossless CIFAR-10 test images.

Usage: python experiments/make_sample.py ../shared/data/cifar10-test-lossless-1195.npz
Keeps the official test images 0..999 (exact, lossless), in official order.
"""

import sys
from pathlib import Path

import numpy as np

src = np.load(sys.argv[1])
keep = np.flatnonzero(src["test_index"] < 1000)
order = keep[np.argsort(src["test_index"][keep])]
out = Path(__file__).resolve().parents[1] / "robench" / "assets" / "cifar10_test_sample.npz"
np.savez_compressed(out, x=src["x"][order], y=src["y"][order].astype(np.int64), test_index=src["test_index"][order])
print(out, len(order))
