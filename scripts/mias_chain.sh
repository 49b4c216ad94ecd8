#!/usr/bin/env bash
# The whole chain on real mammograms (mini-MIAS, ../shared/data/mini-mias), as measured in docs/archive/mias-single-split.md:
#   manifest (patient-wise split) → train → crop-level F1 on test → CorRELAX + baseline maps → Pointing Game + report.
#
#   scripts/mias_chain.sh [OUT]             the chain with the chosen recipe (default OUT: runs/mias)
#   scripts/mias_chain.sh [OUT] variants    also train and evaluate the other classifier variants of the table
#
# Environment: MIAS (data folder, default ../shared/data/mini-mias), CORRELAX (command, default .venv/bin/correlax),
# OMP_NUM_THREADS (default 1: on a CPU shared with other jobs one thread per process was 6x faster than two
# threads; on an idle machine set it to the number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-runs/mias}
MODE=${2:-chain}
MIAS=${MIAS:-../shared/data/mini-mias}
CORRELAX=${CORRELAX:-.venv/bin/correlax}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA="$OUT/manifest.json"
CACHE="$OUT/cache"  # prepared images, shared by every run (keyed by pre-processing settings)

timed() {  # timed NAME CMD...: run CMD, append "NAME seconds load" to $OUT/timings.tsv
    local name=$1 start end
    shift
    start=$(date +%s)
    "$@"
    end=$(date +%s)
    printf '%s\t%s\t%s\n' "$name" "$((end - start))" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/timings.tsv"
}

evaluate() {  # evaluate RUN: crop-level F1 on the test split, 16 crops per box for a steadier estimate
    timed "evaluate $1" "$CORRELAX" evaluate --model "$OUT/$1/model.safetensors" --data "$DATA" --split test \
        --out "$OUT/$1/test" --cache-dir "$CACHE" --crops-per-box 16 --crops-per-normal-image 4
}

mkdir -p "$OUT"
echo "machine: $(getconf _NPROCESSORS_ONLN) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)" \
    >>"$OUT/timings.tsv"

# 1. manifest: 216 images of 108 women, split by woman (70/15/15, stratified by the rarest label)
"$CORRELAX" data mias "$MIAS" --split train=0.7,val=0.15,test=0.15 --seed 0 --out "$DATA"

train_variant() {  # train_variant NAME ARGS...: train OUT/NAME (unless done), then evaluate it on test
    local name=$1
    shift
    [ -f "$OUT/$name/model.safetensors" ] ||
        timed "train $name" "$CORRELAX" train --data "$DATA" --out "$OUT/$name" --cache-dir "$CACHE" \
            --epochs 10 --steps-per-epoch 20 --batch-size 32 --crops-per-normal-image 4 "$@"
    evaluate "$name"
}

# 2. the chosen classifier (variant C of the table): EfficientNet-Lite0 from ImageNet, images resampled to
#    0.4 mm, 128-px crops, 16 crops per box, mass and calcification (plus No Finding) only; 200 steps of 32
MODEL=C_lite0_in128_s04_mc16
train_variant "$MODEL" --backbone lite0 --pretrained imagenet --input-size 128 --target-spacing 0.4 \
    --labels no_finding mass calcification --crops-per-box 16 --lr 3e-4

# 3+4. CorRELAX and the baselines on every test film with a mass or calcification box, Pointing Game of
#    every method under both protocols, metrics.json and the HTML report (maps kept in pg/maps).
#    CPU settings: window = input size (128 px = 51 mm at 0.4 mm), stride 64, 64 masks, skip windows
#    with under 10 % breast.
timed "pointing-game $MODEL" "$CORRELAX" pointing-game --model "$OUT/$MODEL/model.safetensors" --data "$DATA" \
    --split test --out "$OUT/$MODEL/pg" --stride 64 --masks 64 --min-tissue 0.1 --device cpu

# 5. the other classifier variants of the table (same data, cache and test evaluation)
if [ "$MODE" = variants ]; then
    train_variant A_lite0_in128_s04 --backbone lite0 --pretrained imagenet --input-size 128 --target-spacing 0.4 \
        --crops-per-box 8 --lr 3e-4
    train_variant B_tiny_in128_s04 --backbone tiny --pretrained none --input-size 128 --target-spacing 0.4 \
        --crops-per-box 8 --lr 1e-3
    train_variant D_lite0_in128_s02_mc16 --backbone lite0 --pretrained imagenet --input-size 128 \
        --labels no_finding mass calcification --crops-per-box 16 --lr 3e-4
    train_variant E_lite0_in128_s04_mc16_noaug --backbone lite0 --pretrained imagenet --input-size 128 \
        --target-spacing 0.4 --labels no_finding mass calcification --crops-per-box 16 --lr 3e-4 --no-augment
    # recipe C on another patient-wise split (seed 1): how much the numbers move with the split
    DATA="$OUT/manifest-seed1.json"
    "$CORRELAX" data mias "$MIAS" --split train=0.7,val=0.15,test=0.15 --seed 1 --out "$DATA"
    train_variant C_seed1 --backbone lite0 --pretrained imagenet --input-size 128 --target-spacing 0.4 \
        --labels no_finding mass calcification --crops-per-box 16 --lr 3e-4
fi
echo "timings: $OUT/timings.tsv"
