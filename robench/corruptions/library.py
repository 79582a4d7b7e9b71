"""The reference library (``imagecorruptions``) applied image by image, seeded per image.

The library works on one uint8 H×W×C image at a time and draws its randomness from NumPy's global
RNG, except impulse_noise and glass_blur, which take a ``seed`` argument (skimage's and numba's
generators ignore the global seed). Each image therefore gets its own seed, derived from
``(seed, name, severity, position)``, which is used for both: results do not depend on the batch
the image is in, on the number of worker processes, or on their order.

Its parameters are ImageNet-C's whatever the image size (the CIFAR-10-C table exists only for the
torch noise versions in ``robench.corruptions.noise``).

Limits of the library that this wrapper turns into rules:

* images smaller than 32×32 are refused (RobenchError; no upscaling, which would change what is
  measured). The torch noise versions work at any size.
* grayscale (C=1) images are replicated to 3 channels, corrupted, and the first channel is kept, so
  per-pixel noise keeps the same distribution as on a colour channel.
* only C=1 and C=3 are accepted.
"""

from __future__ import annotations

import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from robench.corruptions.names import ALL, check_severity
from robench.errors import RobenchError

MIN_SIZE = 32  # the library refuses smaller heights or widths

# Corruptions whose randomness does not come from NumPy's global RNG: they take ``seed=``.
_SEED_ARGUMENT = ("impulse_noise", "glass_blur")


def image_seed(seed: int, name: str, severity: int, position: int) -> int:
    """The uint32 seed for one image: a SeedSequence hash of (seed, name, severity, position)."""
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF, zlib.crc32(name.encode()), int(severity), int(position)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def _library():  # type: ignore[no-untyped-def]
    try:
        import imagecorruptions
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RobenchError(
            f"the corruptions library is not installed ({exc}); pip install 'robench[corruptions]'"
        ) from None
    return imagecorruptions


def _corrupt_chunk(images: np.ndarray, name: str, severity: int, seed: int, positions: np.ndarray) -> np.ndarray:
    """Corrupt each image with its own seed; NumPy's global RNG state is restored afterwards."""
    corrupt = _library().corrupt
    out = np.empty_like(images)
    state = np.random.get_state()
    try:
        for i, (image, position) in enumerate(zip(images, positions)):
            s = image_seed(seed, name, severity, int(position))
            np.random.seed(s)
            kwargs = {"seed": s} if name in _SEED_ARGUMENT else {}
            gray = image.shape[-1] == 1
            src = np.repeat(image, 3, axis=-1) if gray else image
            result = corrupt(np.ascontiguousarray(src), severity=severity, corruption_name=name, **kwargs)
            out[i] = result[..., :1] if gray else result
    finally:
        np.random.set_state(state)
    return out


def _worker_init() -> None:
    """One OpenCV thread per worker process: the parallelism is across processes."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def corrupt_images(
    images: np.ndarray,
    name: str,
    severity: int,
    *,
    seed: int,
    workers: int = 0,
    positions: np.ndarray | None = None,
    chunk_size: int | None = None,
    start_method: str | None = None,
) -> np.ndarray:
    """``imagecorruptions.corrupt(image, severity, name)`` for each uint8 N×H×W×C image.

    ``positions`` (default ``0..N-1``) identify the images in the per-image seeds: pass dataset
    indices to get the same result for an image however the data are split into calls.
    ``workers > 0`` runs chunks of ``chunk_size`` images in that many processes, started with
    ``start_method``: by default "fork" where the platform has it (like torch's DataLoader; the
    workers only run NumPy/OpenCV code, never CUDA), else "spawn". "spawn" re-imports torch in every
    worker (seconds per call) and needs the calling script's ``if __name__ == "__main__":`` guard.
    The output is identical to ``workers=0``. Returns a new uint8 array of the same shape.
    """
    if name not in ALL:
        raise RobenchError(f"unknown corruption {name!r}; use one of: {', '.join(ALL)}")
    severity = check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise RobenchError(f"corrupt_images needs uint8 N×H×W×C images, got {images.dtype} {tuple(images.shape)}")
    n, h, w, c = images.shape
    if c not in (1, 3):
        raise RobenchError(f"the corruptions library handles 1 or 3 channels, got {c}")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise RobenchError(
            f"the corruptions library needs images of at least {MIN_SIZE}×{MIN_SIZE} px, got {h}×{w}; "
            "for the noise corruptions use the torch versions (robench.corruptions.torch_corrupt)"
        )
    positions = np.arange(n) if positions is None else np.asarray(positions, dtype=np.int64)
    if positions.shape != (n,):
        raise RobenchError(f"positions must hold one index per image ({n}), got shape {positions.shape}")
    if int(workers) < 0:
        raise RobenchError(f"workers must be 0 or more, got {workers}")
    _library()  # a clear error before any process starts
    if int(workers) == 0 or n <= 1:
        return _corrupt_chunk(images, name, severity, seed, positions)

    import multiprocessing

    workers = int(min(workers, n))
    size = chunk_size or max(1, -(-n // (workers * 4)))
    out = np.empty_like(images)
    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init) as pool:
        futures = [
            (start, pool.submit(_corrupt_chunk, images[start:start + size], name, severity, seed,
                                positions[start:start + size]))
            for start in range(0, n, size)
        ]
        for start, future in futures:
            chunk = future.result()
            out[start:start + len(chunk)] = chunk
    return out
