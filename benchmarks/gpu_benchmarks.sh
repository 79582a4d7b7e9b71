#!/usr/bin/env bash
# The GPU measurements in reports/benchmarks/gpu/, in the order they were run (one H100, one session).
# Run from the repository root on a CUDA machine with robench importable (pip install -e ".[dev,corruptions]",
# or PYTHONPATH=. with the dependencies installed) and ROBENCH_SHARED_DATA pointing at the shared data
# (the third-party ResNet-20 checkpoint and cifar10-jpeg.tar.gz). OUT defaults to reports/benchmarks/gpu.
set -euo pipefail
OUT=${OUT:-reports/benchmarks/gpu}
PY=${PYTHON:-python3}
export ROBENCH_PROGRESS=0 PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi -L
# correctness on the GPU: every suite and training method end to end, the CUDA corruption tests
$PY -m pytest -q tests/test_cuda.py tests/test_corruptions.py -k cuda -p no:cacheprovider
# a real evaluation: the bundled model, every suite but AutoAttack, 1,000 images
tmp=$(mktemp -d)
/usr/bin/time -f "full suite, 1,000 images: %e s wall" $PY -m robench evaluate --model zoo:standard --data sample \
  --suite full --corruptions noise --no-autoattack --device cuda --out "$tmp/e2e"
cp "$tmp/e2e/results.csv" "$OUT/e2e-full-suite-results.csv"; cp "$tmp/e2e/meta.json" "$OUT/e2e-full-suite-meta.json"
# corruptions: torch noise family on the GPU and on the host's 16 CPU threads vs the library
$PY benchmarks/bench_corruptions.py --images 1000 --repeats 5 --threads 16 --device cuda \
  --out "$OUT/corruptions-cuda.md"
$PY benchmarks/bench_corruptions.py --images 1000 --repeats 5 --threads 16 --device cpu --library-workers 16 \
  --out "$OUT/corruptions-cpu16.md"
# inequality suite: targets 1 and 4 at the default sizes, target 2, then targets 1 and 4 at larger sizes
$PY benchmarks/bench_inequality.py --device cuda --targets 1,4 --threads 16 \
  --out "$OUT/inequality-cuda.md" --json "$OUT/inequality-cuda.json"
$PY benchmarks/bench_inequality.py --device cuda --targets 2 --threads 16 \
  --out "$OUT/inequality-cuda-attribution.md" --json "$OUT/inequality-cuda-attribution.json"
$PY benchmarks/bench_inequality.py --device cuda --targets 1,4 --threads 16 --suite-images 512 --reference-images 64 \
  --ig-reference-images 32 --out "$OUT/inequality-cuda-large.md" --json "$OUT/inequality-cuda-large.json"
# pass times for docs/scaling.md, the trainer's targets, and one epoch of the reference recipe per method
$PY benchmarks/bench_scaling.py --pass-times-on cuda --batch 128 --out "$OUT/resnet50-pass-times-cuda.md"
$PY benchmarks/bench_training.py --arch resnet18_cifar --batch-size 128 --repeats 5 --device cuda \
  --out "$OUT/training-resnet18-cuda.md"
for m in standard pgd-at; do
  $PY -m robench train --preset cifar10-reference --method $m --data cifar10 --data-dir "${ROBENCH_SHARED_DATA}" \
    --epochs 1 --device cuda --out "$tmp/r18-$m.pt"
  cp "$tmp/r18-$m.pt.log.csv" "$OUT/reference-epoch-$m.log.csv"
done
