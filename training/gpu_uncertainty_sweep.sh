#!/usr/bin/env bash
# The uncertainty head's width and data, swept on a lent GPU (issue #25; BENCHMARKS 11): renders
# SETS x PER_SET training frames (seeds 9500...) and the 200 evaluation frames of seed 931 on the
# machine's cores, gathers the shipped checkpoint's head inputs once, then trains and scores the
# variants below side by side, each under its own time limit.
#
#   RESULTS=$OUT bash training/gpu_uncertainty_sweep.sh                        # on the GPU machine
#   RESULTS=$(mktemp -d) DEVICE=cpu SETS=2 PER_SET=20 EVAL=16 STEPS_SCALE=0.01 \
#       bash training/gpu_uncertainty_sweep.sh
#
# Writes into RESULTS: summary.txt, env.json, NAME.safetensors per variant, and sweep.tgz with
# NAME.json per variant (uncertainty_head_sweep.py: scores, log, where) and every log. The frames
# and the cache go into WORK, by default a fresh folder of its own (mktemp -d; never a fixed name
# under /tmp that another user could have made first), removed at the end; WORK=DIR keeps them
# in DIR.
set -uo pipefail
res=${RESULTS:?set RESULTS to a folder for the results}
device=${DEVICE:-cuda}
sets=${SETS:-12}
per=${PER_SET:-1000}
n_eval=${EVAL:-200}
scale=${STEPS_SCALE:-1}
limit=${VARIANT_LIMIT_S:-180}
py=${PYTHON:-python3}
if [ -n "${WORK:-}" ]; then
    work=$WORK
    mkdir -p "$work" || exit 1
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/unc_sweep.XXXXXX") || exit 1
    made_work=1
fi
t0=$(date +%s)
mkdir -p "$res" || exit 1
echo "frames and cache in $work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one process per core: no oversubscription
trap 'tail -qn 1 "$work"/synth_*.log >"$res/synth.log" 2>/dev/null
      [ -n "${made_work:-}" ] && rm -rf "$work"' EXIT
$py -c "import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': torch.cuda.is_available(),
 'gpu': torch.cuda.get_device_name() if torch.cuda.is_available() else None}))" >"$res/env.json" 2>&1
roots=()
for i in $(seq 0 $((sets - 1))); do
    s=$((9500 + i))
    roots+=(--train-root "$work/train_$s")
    $py -m depthart_core synth --out "$work/train_$s" --count "$per" --seed "$s" --size 256x256 \
        --overwrite >"$work/synth_$s.log" 2>&1 &
done
$py -m depthart_core synth --out "$work/eval_931" --count "$n_eval" --seed 931 --size 256x256 \
    --overwrite >"$work/synth_931.log" 2>&1 &
wait
echo "rendered after $(( $(date +%s) - t0 )) s" | tee "$res/times.log"
$py training/uncertainty_head_sweep.py prepare "${roots[@]}" --eval-root "$work/eval_931" \
    --sampling soft --device "$device" --cache "$work/cache.safetensors" >"$res/prepare.log" 2>&1 \
    || { tail -5 "$res/prepare.log"; exit 1; }
echo "gathered after $(( $(date +%s) - t0 )) s" | tee -a "$res/times.log"
steps() { $py -c "print(max(10, int($1 * $scale)))"; }
# name, width, frames (0: all), steps, batch
while read -r name width frames n batch; do
    f=(); [ "$frames" -gt 0 ] && f=(--frames "$frames")
    timeout $((limit + 60)) $py training/uncertainty_head_sweep.py train \
        --cache "$work/cache.safetensors" --device "$device" --name "$name" --width "$width" \
        "${f[@]}" --steps "$(steps "$n")" --max-seconds "$limit" \
        --batch "$batch" --out "$res" >"$res/$name.log" 2>&1 &
done <<'VARIANTS'
w24_2k 24 2000 3000 16
w24_all 24 0 12000 32
w48_all 48 0 12000 32
w64_all 64 0 12000 32
w96_all 96 0 8000 32
w32_all 32 0 12000 32
VARIANTS
wait
echo "variants done after $(( $(date +%s) - t0 )) s" | tee -a "$res/times.log"
# the device tool returns few files: one summary, one archive of the rows and logs, the heads
$py - "$res" <<'PY' | tee "$res/summary.txt"
import json, pathlib, sys
for j in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(j.read_text())
    if "drop" not in r:
        continue
    print(f"{r['name']}: drop {r['drop']:.3f}  ause/random {r['ause_ratio']:.3f}  spearman "
          f"{r['spearman_per_frame']}  nll {r['val_nll']:.4f}  {r['steps']}/{r['planned_steps']} "
          f"steps in {r['train_seconds']} s")
PY
(cd "$res" && tar czf sweep.tgz ./*.json ./*.log && rm -f ./*.log && find . -name '*.json' \
    ! -name env.json -delete)
