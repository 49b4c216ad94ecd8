#!/usr/bin/env bash
# The GPU benchmark in one call of the device machine (it has torch, timm, OpenCV, scikit-image; no pydicom):
#   carry: runs/bench-data (prepared images: bench_engine.py --save-images --images-npz runs/bench-data/gpu.npz
#          --n-images 8 --scale 0.5) and runs/wheels (pydicom wheel, imported by correlax.io)
#   JSON written to ${OUT:-benchmarks/results}/gpu.json after every image.
# Overrides for a dry run on CPU: DEVICE=cpu BACKBONE=tiny WINDOW=64 STRIDE=8 MASKS=64 BUDGET=20
set -euo pipefail
OUTDIR=${OUT:-benchmarks/results}
if ! python3 -c "import pydicom" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site runs/wheels/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
python3 benchmarks/bench_engine.py \
  --device "${DEVICE:-cuda}" --backbone "${BACKBONE:-tf_efficientnetv2_s}" \
  --images-npz runs/bench-data/gpu.npz --n-images "${N_IMAGES:-8}" \
  --window "${WINDOW:-256}" --stride "${STRIDE:-32}" --n-masks "${MASKS:-1280}" \
  --mask-round 64 --se-tol 0.1 --min-tissue "${MIN_TISSUE:-0.1}" --mode-precision bf16 \
  --plain-windows "${PLAIN_WINDOWS:-4}" --time-budget "${BUDGET:-240}" \
  --out "$OUTDIR/gpu.json"
