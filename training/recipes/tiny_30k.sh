#!/usr/bin/env bash
# The shipped default (tiny preset, DepthART) and its teacher-forcing twin with the same budget.
# Stage 1 is the tiny tokenizer of `python training/ablation.py --preset tiny --out runs/ablation_tiny`
# (training/configs/tiny_tokenizer.yaml, 150 steps). Stage 2 trains on a 30,000-frame synthetic
# pool (seed 0, 64x64) in two legs: 2,500 steps (cosine, lr 1e-3), then 6,000 more steps from
# that checkpoint (new cosine, 100 warm-up steps, EMA 0.999). About 30 min per mode on 2 CPU cores.
#
#   bash training/recipes/tiny_30k.sh depthart          # -> runs/tiny_30k_depthart
#   bash training/recipes/tiny_30k.sh teacher_forcing   # -> runs/tiny_30k_teacher_forcing
set -euo pipefail
mode=${1:-depthart}
tok=${TOKENIZER:-runs/ablation_tiny/tokenizer/checkpoint.safetensors}
out=${OUT:-runs/tiny_30k_$mode}
cfg=training/configs/tiny_$mode.yaml
[ -f "$tok" ] || depthart train --config training/configs/tiny_tokenizer.yaml \
    --out "$(dirname "$tok")"
depthart train --config "$cfg" --set init_checkpoint="$tok" --set steps=2500 \
    --set data.pool_size=30000 --set val_every=250 --set ckpt_every=250 --out "$out/leg1"
depthart train --config "$cfg" --set init_checkpoint="$out/leg1/checkpoint.safetensors" \
    --set init_tokenizer_only=false --set steps=6000 --set data.pool_size=30000 \
    --set data.val_count=64 --set val_every=1000 --set ckpt_every=500 --set ema=0.999 \
    --set optim.warmup=100 --out "$out/leg2"
