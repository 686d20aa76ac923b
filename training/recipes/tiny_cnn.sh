#!/usr/bin/env bash
# The shipped default (tiny_cnn preset, DepthART) from nothing, and its teacher-forcing twin with
# the identical budget, data and seeds. On the 2-core CPU, one thread per run:
#   1. render the 40,000-frame synthetic pool (seed 0, 64x64; ~3 min, cached in ~/.cache/depthart)
#   2. stage 1: the depth-only multi-scale VQ-VAE, 1,500 steps of 16 (~15 min)
#   3. stage 2: 5,000 steps of 16 with the DepthART objective (or teacher forcing), the "cnn"
#      image prefix with its auxiliary latent loss and photometric augmentation
#   4. held-out evaluation: 200 frames of seed 777 at 256x256 against the mean-depth-map prior
#
#   bash training/recipes/tiny_cnn.sh depthart          # -> runs/tiny_cnn/depthart
#   bash training/recipes/tiny_cnn.sh teacher_forcing   # -> runs/tiny_cnn/teacher_forcing
#   RESUME=1 bash training/recipes/tiny_cnn.sh depthart # continue an interrupted stage 2
set -euo pipefail
mode=${1:-depthart}
out=${OUT:-runs/tiny_cnn}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tok=$out/tokenizer/checkpoint.safetensors
[ -f "$out/tokenizer/DONE" ] || {
    depthart train --config training/configs/tiny_cnn_tokenizer.yaml --out "$out/tokenizer" \
        ${RESUME:+--resume}
    touch "$out/tokenizer/DONE"
}
depthart train --config "training/configs/tiny_cnn_$mode.yaml" --set init_checkpoint="$tok" \
    --out "$out/$mode" ${RESUME:+--resume}
[ -d "$out/eval_seed777" ] || depthart synth --out "$out/eval_seed777" --count 200 --seed 777 \
    --size 256x256
depthart eval --dataset synthetic --root "$out/eval_seed777" --protocol depthart \
    --checkpoint "$out/$mode/checkpoint.safetensors" --baseline mean_depth --out "$out/eval_$mode"
