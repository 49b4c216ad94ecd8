#!/usr/bin/env bash
# The GPU benchmark in one call of the device machine (it has torch, timm, safetensors, OpenCV, scikit-image;
# no pydicom). Two parts, each writing its JSON after every image, so a cut-off run keeps what it measured:
#   speed.json    EfficientNetV2-S at 256 px, random init (the network of method §10): the plain way against
#                 exact fp32, bf16 and bf16 + torch.compile, and the fast mode;
#   trained.json  a trained checkpoint on its own test images: how much each faster mode changes the maps and
#                 the Pointing Game outcome of a network whose maps mean something (warm-up on a whole image, so
#                 every batch shape of mask stopping is autotuned before timing).
# Run on an H200 on 2026-11-27 (benchmarks/results/gpu-h200-speed.json, gpu-h200-trained-all.json): the whole
# script with TRAINED_BUDGET=150 and the earlier part 2 (fast, fast-same-stride; window warm-up) took 343 s; this
# part 2 alone, in a second call, measured for 220 s (its JSON's wall_seconds) over the 9 images.
# Carry runs/bench-data and runs/wheels, made here by:
#   python benchmarks/bench_engine.py --save-images --images-npz runs/bench-data/gpu.npz --n-images 8 --scale 0.5
#   python benchmarks/bench_engine.py --save-images --images-npz runs/bench-data/mias-trained.npz \
#       --checkpoint runs/bench-data/mias-lite0.safetensors --manifest runs/mias/manifest.json --n-images 20
#   (mias-lite0.safetensors: the mini-MIAS recipe's model.safetensors; runs/wheels: a pydicom wheel)
#   fullsize     gpu-fullsize.json: full-field synthetic mammograms (the generator's VinDr layout, 3328 px high at
#                its 0.062 mm: the window count of a VinDr-Mammo image), EfficientNetV2-S (`paper`, random init),
#                W=256, S=32, K=FULL_MASKS (default 128: these images have 4,680 and 5,673 windows, so exact fp32 at
#                K=1280 is about 6-7 M passes per image, past one call's 10 min; exact time grows with K): the plain
#                way, exact fp32 / bf16 / bf16 + compile, the fast modes incl. coarse-to-fine, the prediction map
#                alone (no masks: one pass per window, bf16), and each mode's bare
#                network rate (--targets fullsize). Its images come prepared (fullsize.npz, 30 MB, carried):
#   python -m correlax data synthetic runs/fullsize --images 8 --size 3328      (writes runs/fullsize/manifest.json)
#   python benchmarks/bench_engine.py --save-images --manifest runs/fullsize/manifest.json --split test \
#       --n-images 2 --images-npz runs/bench-data/fullsize.npz
# A dry run on CPU: DEVICE=cpu BACKBONE=tiny WINDOW=64 STRIDE=16 MASKS=64 TRAINED_STRIDE=32 TRAINED_MASKS=64 \
#   BUDGET=5 TRAINED_BUDGET=5 N_IMAGES=1 OUT=/tmp/gpu-dry bash benchmarks/gpu.sh
# The full-size part alone, shrunk to tiny sizes on the CPU (it makes its own small synthetic images):
#   DRY=1 PARTS=fullsize OUT=/tmp/gpu-dry bash benchmarks/gpu.sh        (tests/test_gpu_script.py runs it)
set -euo pipefail
OUTDIR=${OUT:-benchmarks/results}
PARTS=${PARTS:-speed trained fullsize}
FULL_NPZ=${FULL_NPZ:-runs/bench-data/fullsize.npz}
has_part() { [[ " $PARTS " == *" $1 "* ]]; }
if ! python3 -c "import pydicom" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site runs/wheels/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if [ "${DRY:-0}" = 1 ]; then  # everything tiny, on the CPU
  export DEVICE=cpu BACKBONE=tiny FULL_WINDOW=32 FULL_STRIDE=16 FULL_MASKS=16 FULL_BUDGET=1 FULL_IMAGES=1 FULL_BARE=0.2
  FULL_NPZ="$OUTDIR/dry-fullsize.npz"
  python3 -m correlax data synthetic "$OUTDIR/dry-data" --images 8 --size 192 >/dev/null  # writes dry-data/manifest.json
  python3 benchmarks/bench_engine.py --save-images --manifest "$OUTDIR/dry-data/manifest.json" --split test \
    --n-images 1 --images-npz "$FULL_NPZ" --backbone tiny
fi
DEVICE=${DEVICE:-cuda}
MODES=exact-bf16,exact-bf16-compile,fast
[ "$DEVICE" = cpu ] && MODES=exact-bf16,fast  # inductor on CPU is not what is being measured
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
status=0
if has_part speed; then python3 benchmarks/bench_engine.py \
  --device "$DEVICE" --backbone "${BACKBONE:-tf_efficientnetv2_s}" \
  --modes "$MODES" --images-npz runs/bench-data/gpu.npz --n-images "${N_IMAGES:-8}" \
  --window "${WINDOW:-256}" --stride "${STRIDE:-32}" --n-masks "${MASKS:-1280}" \
  --mask-round 64 --se-tol 0.1 --min-tissue 0.1 --mode-precision bf16 \
  --plain-windows 4 --time-budget "${BUDGET:-60}" --out "$OUTDIR/speed.json" || { status=1; echo "part 1 failed; the others run all the same"; }; fi
if has_part trained; then python3 benchmarks/bench_engine.py \
  --device "$DEVICE" --checkpoint runs/bench-data/mias-lite0.safetensors \
  --modes tissue,masks-se,fast,fast-same-stride --images-npz runs/bench-data/mias-trained.npz --n-images 20 \
  --stride "${TRAINED_STRIDE:-16}" --n-masks "${TRAINED_MASKS:-1280}" \
  --mask-round 64 --se-tol 0.1 --min-tissue 0.1 --mode-precision bf16 \
  --plain-windows 4 --warmup image --time-budget "${TRAINED_BUDGET:-200}" --out "$OUTDIR/trained.json" || status=1; fi
FULL_MODES=exact-bf16,exact-bf16-compile,cli-fast,fast,c2f-fast,prediction-only
[ "$DEVICE" = cpu ] && FULL_MODES=exact-bf16,cli-fast,c2f-fast,prediction-only
if has_part fullsize; then python3 benchmarks/bench_engine.py \
  --device "$DEVICE" --backbone "${BACKBONE:-paper}" --targets fullsize \
  --modes "$FULL_MODES" --images-npz "$FULL_NPZ" --n-images "${FULL_IMAGES:-1}" \
  --window "${FULL_WINDOW:-256}" --stride "${FULL_STRIDE:-32}" --n-masks "${FULL_MASKS:-128}" \
  --mask-round 64 --se-tol 0.1 --min-tissue 0.1 --mode-precision bf16 --coarse-factor 2 \
  --bare-seconds "${FULL_BARE:-5}" --plain-windows 4 --time-budget "${FULL_BUDGET:-150}" \
  --out "$OUTDIR/gpu-fullsize.json" || status=1; fi
exit $status
