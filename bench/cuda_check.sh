#!/usr/bin/env bash
# The CUDA path, checked end to end on a machine with an NVIDIA GPU (CI has none):
#   train (default recipe, 15 epochs) → evaluate → export (ONNX parity on CPU) on a CUDA-trained run,
#   DDP over nccl under torchrun, --nproc beyond the GPU count, the training/export tests with CUDA
#   present, training speed on the GPU (both recipes there), the training step under each --compile mode,
#   and predict_speed pinned to 2 cores.
#
#   FMNIST_DATA=/path/to/idx bash bench/cuda_check.sh [OUT_DIR]
#
# Every step's output goes to OUT_DIR/cuda_check.log (default /tmp/fmnist-cuda-check). Steps run in
# order of importance and each one's failure is logged without stopping the others.
set -u
OUT_DIR=${1:-${OUT:-/tmp/fmnist-cuda-check}}
RUNS=$OUT_DIR/runs
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT_DIR"
LOG=$OUT_DIR/cuda_check.log
: >"$LOG"

step() {  # step NAME COMMAND...: run it, log its output and its wall time
    local name=$1; shift
    echo "=== $name: $*" | tee -a "$LOG"
    local t0; t0=$(date +%s%N)
    "$@" >>"$LOG" 2>&1
    local rc=$? ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    printf '=== %s: exit %d after %d.%03d s\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) | tee -a "$LOG"
}

step env bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; \
  $PY -c 'import torch, onnxruntime, typer; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available(), \
  torch.cuda.get_device_name() if torch.cuda.is_available() else \"-\", \"| onnxruntime\", onnxruntime.__version__)'"
step train-k3 $PY -m fmnist_tui train --arch cnn --kernel 3 --seed 0 --out "$RUNS"
step evaluate-k3 $PY -m fmnist_tui evaluate cnn-k3-s0 --runs "$RUNS" --device cuda --json
step train-mlp $PY -m fmnist_tui train --arch mlp --seed 0 --out "$RUNS"
step export-k3 $PY -m fmnist_tui export cnn-k3-s0 --runs "$RUNS" --out "$OUT_DIR/export"
step ddp-nccl-1gpu $PY -m torch.distributed.run --standalone --nproc-per-node=1 -m fmnist_tui train \
    --arch cnn --kernel 3 --epochs 2 --seed 1 --out "$RUNS" --name ddp-nccl
step nproc-beyond-gpus $PY -m fmnist_tui train --arch cnn --kernel 3 --epochs 1 --nproc "$(( $(nvidia-smi -L | wc -l) + 1 ))" \
    --out "$RUNS" --name too-many
step pytest $PY -m pytest -q -x -p no:cacheprovider tests/test_train.py tests/test_models.py tests/test_export.py \
    tests/test_distributed.py
step train-speed $PY bench/train_speed.py --device cuda
step compile-speed $PY bench/compile_speed.py --device cuda
step predict-speed-2cores taskset -c 0,1 $PY bench/predict_speed.py --runs "${BENCH_RUNS:-checkpoints}"
