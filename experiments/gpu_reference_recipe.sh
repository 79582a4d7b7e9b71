#!/usr/bin/env bash
# Issue 26 item 4 on a lent GPU: the IGD authors' recipe (`--preset cifar10-reference`: ResNet-18, PGD-10 at 8/255 with
# step 2/255, batch 128, SGD 0.1 / 0.9 / 5e-4, ReduceLROnPlateau with patience 10) for PGD-AT and IGD λ = 2, as many
# epochs as the device time allows, then both evaluated like the fast study's models (sample images, the teacher as
# --reference-model). The teacher is a plain cross-entropy ResNet-18 as in the official code, but trained with a
# one-cycle schedule (TEACHER_EPOCHS) instead of 150 plateau epochs, which a lent GPU's minutes do not hold.
#
#   bash experiments/gpu_reference_recipe.sh STEP      STEP: teacher-and-pgd-at | igd | evaluate
#
# Each step is resumable and fits one device command (at most 600 s; H100: about 5 s per standard epoch, 38 s per
# PGD-AT epoch, 60 s per IGD epoch, reports/benchmarks/gpu). Run from the build machine, repository root:
#   mkdir -p .gpu && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/ && echo /.gpu/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl foolbox eagerpy GitPython gitdb smmap   # (.whl excluded too)
#   device run: command "bash experiments/gpu_reference_recipe.sh teacher-and-pgd-at", carry [".whl", ".gpu"]
# then the next steps at once: the checkpoints stay in REFERENCE_DIR (default .gpu/reference/, git-ignored) on the warm
# machine, which a later, bare one lacks. Logs and runs come back through $OUT when set.
# DEVICE (default cuda), TRAIN_OPTIONS and EVALUATE_OPTIONS (extra options) are for a CPU smoke run of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${1:?usage: gpu_reference_recipe.sh teacher-and-pgd-at|igd|evaluate}
DIR=${REFERENCE_DIR:-.gpu/reference}
DATA_DIR=${ROBENCH_SHARED_DATA:-.gpu}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-15}
EPOCHS=${EPOCHS:-5}
if [ -d .whl ] && ! python3 -c "import foolbox" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} ROBENCH_PROGRESS=0 PYTHONUNBUFFERED=1
mkdir -p "$DIR"
DEVICE=${DEVICE:-cuda}
[ "$DEVICE" = cpu ] || nvidia-smi -L
train() {  # NAME ROBENCH-TRAIN-OPTIONS...: resumes an interrupted run, skips a finished one
    local name=$1; shift
    if [ -f "$DIR/$name.pt" ] && [ ! -f "$DIR/$name.pt.state.pt" ]; then return; fi
    local resume=(); [ -f "$DIR/$name.pt.state.pt" ] && resume=(--resume)
    python3 -m robench train --preset cifar10-reference --data cifar10 --data-dir "$DATA_DIR" --device "$DEVICE" \
        --seed 0 --name "$name" "$@" ${TRAIN_OPTIONS:-} "${resume[@]}" --out "$DIR/$name.pt"
}
case $STEP in
  teacher-and-pgd-at)
    train standard --method standard --epochs "$TEACHER_EPOCHS" --schedule onecycle
    train pgd-at-eps8 --method pgd-at --epochs "$EPOCHS" ;;
  igd)
    train igd-lam2 --method igd --lam 2 --teacher "$DIR/standard.pt" --epochs "$EPOCHS" ;;
  evaluate)
    for name in standard pgd-at-eps8 igd-lam2; do
        [ -d "$DIR/runs/$name" ] || python3 -m robench evaluate --model "$DIR/$name.pt" --data sample \
            --suite inequality,adversarial --eps 8/255 --reference-model "$DIR/standard.pt" --device "$DEVICE" \
            ${EVALUATE_OPTIONS:-} --out "$DIR/runs/$name"
    done ;;
  *) echo "unknown step $STEP" >&2; exit 2 ;;
esac
if [ -n "${OUT:-}" ]; then  # the device tool brings back $OUT: logs and runs (not the 45 MB checkpoints)
    cp "$DIR"/*.log.csv "$OUT"/ 2>/dev/null || true
    [ -d "$DIR/runs" ] && cp -r "$DIR/runs" "$OUT"/
fi
