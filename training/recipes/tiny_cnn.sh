#!/usr/bin/env bash
# The shipped default (tiny_cnn_refine preset, DepthART) from nothing, and its teacher-forcing
# twin with the identical budget, data and seeds. On the 2-core CPU, one thread per run:
#   1. render the 40,000-frame synthetic pool (seed 0, 64x64; ~3 min, cached in ~/.cache/depthart)
#   2. stage 1: the depth-only multi-scale VQ-VAE, 1,500 steps of 16 (~15 min)
#   3. stage 2, leg 1: 3,500 steps of 16 with teacher forcing: the "cnn" image prefix with its
#      auxiliary latent loss, photometric augmentation, token maps that refine the encoder's
#      latent estimate (~30-50 min). Shared by both modes: a curriculum, since a from-scratch
#      DepthART rollout feeds on its own noise (BENCHMARKS.md section 2c)
#   4. stage 2, leg 2: 1,500 steps of 16 from leg 1 (lr 5e-4, new cosine) with the DepthART
#      objective or teacher forcing again (its twin) (~12 min)
#   5. stage 2, leg 3: 3,000 more steps of 16 from leg 2 (lr 3e-4, new cosine), same objective
#      as leg 2 (~27 min)
#   6. stage 2, leg 6 (lighting variety, for real photographs): 2,000 steps of 16 from leg 3 on
#      a new 20,000-frame pool (seed 3) with a lamp at the camera in half the frames and ambient
#      light of 0.1-1.5 of a ceiling light (lr 2e-4, new cosine; ~17 min). The DepthART run is
#      the shipped model until 2026-12-03, the other its twin. Legs 4, 5 and 7 were experiments
#      that were not kept (BENCHMARKS.md 2d, 2e)
#   7. stage 2, leg 8 (issue 24): 3,000 steps of 16 from leg 6 on leg 6's data, lr 3e-4 cosine.
#      depthart: the soft rollout (training/configs/tiny_cnn_refine_soft.yaml: soft_rollout,
#      soft_latent 10), committed as training/legs/refine_soft_leg1; teacher_forcing: its twin,
#      3,000 more teacher-forcing steps (~50 min)
#   8. the log depth codec (issues 24, 26, 27; BENCHMARKS 2j): a stage-1 tokenizer as step 2
#      with depth_codec log (~14 min); leg L1: 1,500 teacher-forcing steps that start the
#      transformer and image encoder from leg 8 (init_transformer_from) on the log tokenizer, on
#      a new 20,000-frame pool (seed 5) with leg 6's lighting and cameras 0.3-1.9 m (lr 5e-4,
#      ~15 min); leg L2: 2,500 steps from L1 with the transformer grown from 3 to 6 blocks
#      (init_grow), the soft DepthART objective for depthart, teacher forcing for its twin
#      (lr 3e-4, ~40 min). Both modes share L1, as both shared leg 1
#   9. (issue 24; BENCHMARKS 2k) leg L3: 3,000 more steps from L2 with L2's objective (soft
#      DepthART, or teacher forcing for the twin) on a new 20,000-frame pool (seed 6, L2's
#      settings otherwise; lr 2e-4, ~40 min); depthart only, leg L4: 3,000 more from L3 on another
#      new pool (seed 7; lr 1e-4, ~40 min); leg L5: 1,000 more from L4 (seed 8, lr 7e-5,
#      ~12 min); leg L6: 3,000 more from L5 (seed 9, lr 7e-5, ~45 min; BENCHMARKS 2l); leg L7:
#      3,077 steps of 128 from L6 on a 40,000-frame pool (seed 10, lr 1.5e-4; BENCHMARKS 2m): 7 min
#      on an H200 (training/gpu_leg.sh sized it to its budget), about 6 h on this CPU (eight
#      times L6's frames). The twin stops at L3
#  10. depthart only, the tokenizer's decoder fine-tuned (BENCHMARKS 2n): stage 1 had 1,500 steps;
#      3,000 decoder-only steps of 32 on 8,000 rendered 64 px frames (seeds 951-952), then 4,000
#      more on those and leg L6's cached pool (seed 9, cameras from 0.3 m; lr 1.5e-4). Encoder and
#      codebook frozen: every frame keeps its tokens, the transformer is L7's (~60 min)
#  11. depthart only, the uncertainty head (issue 25): 6,000 rendered frames of seeds 942 and 941
#      at 256x256 (~8 min), the head (width 16, reading the image encoder's features: --context)
#      trained on the soft depth errors of step 10's model there (~18 min); the depth stays
#      bit-identical. The result is the shipped model
#  12. held-out evaluation: 200 frames of seed 777 at 256x256 against the mean-depth-map prior
#
#   bash training/recipes/tiny_cnn.sh depthart          # -> runs/tiny_cnn/head_depthart
#   bash training/recipes/tiny_cnn.sh teacher_forcing   # -> runs/tiny_cnn/logL3_teacher_forcing
#   RESUME=1 bash training/recipes/tiny_cnn.sh depthart # continue an interrupted leg
set -euo pipefail
mode=${1:-depthart}
out=${OUT:-runs/tiny_cnn}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tok=$out/tokenizer/checkpoint.safetensors
leg1=$out/refine_teacher_forcing
leg2=$out/leg2_$mode
leg3=$out/leg3_$mode
leg6=$out/leg6_$mode
leg8=$out/leg8_$mode
[ -f "$out/tokenizer/DONE" ] || {
    depthart train --config training/configs/tiny_cnn_tokenizer.yaml --out "$out/tokenizer" \
        ${RESUME:+--resume}
    touch "$out/tokenizer/DONE"
}
[ -f "$leg1/DONE" ] || {
    depthart train --config training/configs/tiny_cnn_refine_teacher_forcing.yaml \
        --set init_checkpoint="$tok" --out "$leg1" ${RESUME:+--resume}
    touch "$leg1/DONE"
}
[ -f "$leg2/DONE" ] || {
    depthart train --config "training/configs/tiny_cnn_refine_$mode.yaml" \
        --set init_checkpoint="$leg1/checkpoint.safetensors" --set init_tokenizer_only=false \
        --set steps=1500 --set optim.lr=5.0e-4 --set optim.warmup=100 --out "$leg2" ${RESUME:+--resume}
    touch "$leg2/DONE"
}
[ -f "$leg3/DONE" ] || {
    depthart train --config "training/configs/tiny_cnn_refine_$mode.yaml" \
        --set init_checkpoint="$leg2/checkpoint.safetensors" --set init_tokenizer_only=false \
        --set steps=3000 --set optim.lr=3.0e-4 --set optim.warmup=100 --out "$leg3" \
        ${RESUME:+--resume}
    touch "$leg3/DONE"
}
light=(--set data.pool_size=20000 --set data.synth.camera_light=0.5
       --set "data.synth.ambient=[0.1,1.5]" --set init_tokenizer_only=false
       --set optim.lr=2.0e-4 --set optim.warmup=100)
[ -f "$leg6/DONE" ] || {
    depthart train --config "training/configs/tiny_cnn_refine_$mode.yaml" "${light[@]}" \
        --set init_checkpoint="$leg3/checkpoint.safetensors" --set data.seed=3 \
        --set steps=2000 --out "$leg6" ${RESUME:+--resume}
    touch "$leg6/DONE"
}
if [ "$mode" = depthart ]; then leg8_config=training/configs/tiny_cnn_refine_soft.yaml
else leg8_config=training/configs/tiny_cnn_refine_teacher_forcing.yaml; fi
[ -f "$leg8/DONE" ] || {
    depthart train --config "$leg8_config" "${light[@]}" --set optim.lr=3.0e-4 \
        --set init_checkpoint="$leg6/checkpoint.safetensors" --set data.seed=3 --set steps=3000 \
        --out "$leg8" ${RESUME:+--resume}
    touch "$leg8/DONE"
}
logtok=$out/tokenizer_log
logL1=$out/logL1_teacher_forcing
logL2=$out/logL2_$mode
log=(--set model_overrides.tokenizer.depth_codec=log --set data.pool_size=20000
     --set data.synth.camera_light=0.5 --set "data.synth.ambient=[0.1,1.5]"
     --set "data.synth.camera_height=[0.3,1.9]" --set data.seed=5 --set optim.warmup=100)
[ -f "$logtok/DONE" ] || {
    depthart train --config training/configs/tiny_cnn_tokenizer.yaml \
        --set model_overrides.tokenizer.depth_codec=log --out "$logtok" ${RESUME:+--resume}
    touch "$logtok/DONE"
}
[ -f "$logL1/DONE" ] || [ -f "$out/leg8_depthart/DONE" ] || {
    echo "leg L1 starts from the DepthART leg 8: run 'tiny_cnn.sh depthart' first" >&2; exit 1; }
[ -f "$logL1/DONE" ] || {  # from the DepthART leg 8 for both modes: the shared curriculum
    depthart train --config training/configs/tiny_cnn_refine_teacher_forcing.yaml "${log[@]}" \
        --set init_checkpoint="$logtok/checkpoint.safetensors" --set init_tokenizer_only=true \
        --set init_transformer_from="$out/leg8_depthart/checkpoint.safetensors" \
        --set steps=1500 --set optim.lr=5.0e-4 --out "$logL1" ${RESUME:+--resume}
    touch "$logL1/DONE"
}
[ -f "$logL2/DONE" ] || {
    depthart train --config "$leg8_config" "${log[@]}" --set model_overrides.transformer.depth=6 \
        --set init_checkpoint="$logL1/checkpoint.safetensors" --set init_tokenizer_only=false \
        --set init_grow=true --set steps=2500 --set optim.lr=3.0e-4 --out "$logL2" \
        ${RESUME:+--resume}
    touch "$logL2/DONE"
}
more=("${log[@]}" --set model_overrides.transformer.depth=6 --set init_tokenizer_only=false
      --set steps=3000)
# one continuation leg on a new pool: run_leg OUT FROM SEED LR [--set ...]
run_leg() {
    local dst=$1 src=$2 seed=$3 lr=$4
    shift 4
    [ -f "$dst/DONE" ] || {
        depthart train --config "$leg8_config" "${more[@]}" --set data.seed="$seed" \
            --set init_checkpoint="$src/checkpoint.safetensors" --set optim.lr="$lr" "$@" \
            --out "$dst" ${RESUME:+--resume}
        touch "$dst/DONE"
    }
}
logL3=$out/logL3_$mode
run_leg "$logL3" "$logL2" 6 2.0e-4
final=$logL3/checkpoint.safetensors
if [ "$mode" = depthart ]; then
    logL4=$out/logL4_depthart
    logL5=$out/logL5_depthart
    logL6=$out/logL6_depthart
    run_leg "$logL4" "$logL3" 7 1.0e-4
    run_leg "$logL5" "$logL4" 8 7.0e-5 --set steps=1000
    run_leg "$logL6" "$logL5" 9 7.0e-5
    logL7=$out/logL7_depthart  # on a GPU: add --set device=cuda (auto picks it anyway)
    run_leg "$logL7" "$logL6" 10 1.5e-4 --set data.pool_size=40000 --set batch_size=128 \
        --set steps=3077
    [ -d "$out/unc_train941" ] || depthart synth --out "$out/unc_train941" --count 2000 \
        --seed 941 --size 256x256
    [ -d "$out/unc_train942" ] || depthart synth --out "$out/unc_train942" --count 4000 \
        --seed 942 --size 256x256
    for s in 951 952; do
        [ -d "$out/dec_$s" ] || depthart synth --out "$out/dec_$s" --count 4000 --seed $s \
            --size 64x64
    done
    dec=$out/decoder_depthart
    cache=${DEPTHART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/depthart}  # leg L6 rendered it
    pools9=("$cache"/synth/s9_*_64px_20000.safetensors)
    if [ "${#pools9[@]}" -ne 1 ] || [ ! -f "${pools9[0]}" ]; then
        echo "tiny_cnn.sh: need exactly one leg-L6 pool $cache/synth/s9_*_64px_20000.safetensors," \
            "found: ${pools9[*]}" >&2
        exit 1
    fi
    pool9=${pools9[0]}
    [ -f "$dec/dec3000.safetensors" ] || python training/decoder_finetune.py \
        --checkpoint "$logL7/checkpoint.safetensors" --train-root "$out/dec_951" \
        --train-root "$out/dec_952" --steps 3000 --out "$dec/dec3000.safetensors"
    [ -f "$dec/dec7000.safetensors" ] || python training/decoder_finetune.py \
        --checkpoint "$dec/dec3000.safetensors" --pool "$pool9" --train-root "$out/dec_951" \
        --train-root "$out/dec_952" --steps 4000 --lr 1.5e-4 --out "$dec/dec7000.safetensors"
    final=$out/head_depthart/checkpoint.safetensors
    [ -f "$final" ] || python training/uncertainty_head.py --train-root "$out/unc_train942" \
        --train-root "$out/unc_train941" --checkpoint "$dec/dec7000.safetensors" --sampling soft \
        --width 16 --context --steps 3000 --batch 16 --out "$final"
fi
[ -d "$out/eval_seed777" ] || depthart synth --out "$out/eval_seed777" --count 200 --seed 777 \
    --size 256x256
depthart eval --dataset synthetic --root "$out/eval_seed777" --protocol depthart --backend torch \
    --checkpoint "$final" --baseline mean_depth --out "$(dirname "$final")/eval_seed777"
