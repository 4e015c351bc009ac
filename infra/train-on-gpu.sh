#!/usr/bin/env bash
# Training runs on one GPU machine with the JAX backend, each through the project's own
# `python -m classifier train`, each sized to a time budget; then every resulting model's test
# accuracy, single images and flip-averaged. Each argument is one run's flags; a lone `--` ends a
# stage. The runs of a stage train side by side; a later stage's flags may name an earlier run's
# model as @runN, calibrated as export calibrates (so that teachers trained in the same call can
# teach: an ensemble's members must not differ by confidence alone). With no arguments, the three
# candidates that made stage 1 of the shipped baseline (docs/model.md, "How the baseline was
# made"). Run through the device tool from the repository root after `make gpu-kit`, carrying
# .devdata and .whl (docs/model.md, "Training on a GPU machine"). Writes the log, each run's model
# and training record to $OUT.
#
#   infra/train-on-gpu.sh                                      # stage 1's three candidates
#   infra/train-on-gpu.sh "--widths 32,64,256,256 --epochs 200 --cutout 12" "--recipe airbench --epochs 40"
#   infra/train-on-gpu.sh "--epochs 200 --cutout 12" -- "--teacher @run0 --distillation 0.8 --budget-seconds 200"
#
# A run's own --budget-seconds overrides BUDGET; each run is stopped SLACK seconds after its
# budget (data loading, compilation) if it is still going, and under a DEADLINE sooner. EXTRA is
# appended to every run's flags (later flags win): EXTRA="--limit 200 --epochs 1" rehearses a
# plan in minutes.
set -u
DATA=${DATA:-.devdata/cifar10-train.tar.gz}
TEST=${TEST:-.devdata/cifar10-test.tar.gz}
BUDGET=${BUDGET:-170}           # seconds of training per run (fewer epochs than asked if it must)
SLACK=${SLACK:-150}             # seconds past its budget before a run is stopped
DEADLINE=${DEADLINE:-}          # seconds after the start by which the script is to end (none if empty)
FINISH=${FINISH:-40}            # seconds a stage's check and packing take, kept free before DEADLINE
OUT=${OUT:-/tmp/gpu-out}
PYTHON=${PYTHON:-python3}
RUNS=${RUNS:-/tmp/runs}
FILE_LIMIT=${FILE_LIMIT:-16777216}  # the device tool returns no larger file: about 4M float32 parameters
if [ $# -eq 0 ]; then
  # Round 1 (lr 0.4; lr 0.2; batch 256 with lr 0.2; 200 epochs each) gave 90.0%, 89.8%, 89.4%
  # with training accuracy near 100%: over-fitting, so stage 1 (round 2) varies cutout.
  set -- "--widths 32,64,256,256 --policy mixed_bfloat16 --epochs 200 --cutout 8" \
         "--widths 32,64,256,256 --policy mixed_bfloat16 --epochs 200 --cutout 12" \
         "--widths 32,64,256,256 --policy mixed_bfloat16 --epochs 200 --cutout 16"
fi
runs=0 widest=0 width=0
for flags in "$@" --; do
  if [ "$flags" = "--" ]; then
    [ "$width" -gt "$widest" ] && widest=$width
    width=0
  else
    runs=$((runs + 1)) width=$((width + 1))
  fi
done
if [ "$runs" -gt 7 ]; then
  echo "at most 7 runs: each comes back as one file, with the log, and the device tool returns 8" >&2
  exit 2
fi
mkdir -p "$OUT" "$RUNS"
WHEELS=${WHEELS-.whl}           # what `make gpu-kit` fetched; empty: use the installed Keras
if [ -n "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}layers/classifier KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
# each run's share of the GPU's memory, so that the widest stage fits side by side
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-$(awk "BEGIN { print 0.9 / $widest }")}
nvidia-smi -L 2>/dev/null

# One run, in the background: @runN in its flags becomes that run's calibrated model. Under a
# DEADLINE its budget shrinks to what is left less SLACK (so its schedule still ends, annealed),
# and it is stopped FINISH seconds before the deadline, leaving time to pack what it made.
launch() {
  local name=$1 flags budget=$BUDGET left stop
  flags=$(sed -E "s#@(run[0-9]+)#$RUNS/\1/teacher.keras#g" <<<"$2")
  budget=$(grep -o -E -- "--budget-seconds[[:space:]]+[0-9]+" <<<"--budget-seconds $BUDGET $flags" | tail -n 1 | grep -o -E "[0-9]+$")
  stop=$((budget + SLACK))
  if [ -n "$DEADLINE" ]; then
    left=$((DEADLINE - SECONDS))
    if [ $((left - SLACK)) -lt "$budget" ]; then
      budget=$((left - SLACK)) flags="$flags --budget-seconds $budget"
    fi
    [ $((left - FINISH)) -lt "$stop" ] && stop=$((left - FINISH))
    if [ "$budget" -lt 1 ]; then
      echo "$name: skipped, ${left} s left before the deadline" > "$RUNS/$name.log"
      return
    fi
  fi
  # $flags is split on spaces on purpose: one argument holds one run's flags
  # shellcheck disable=SC2086
  { echo "flags: $flags"
    echo "$name: stopped if still going after $stop s"
    timeout "$stop" "$PYTHON" -m classifier train --data "$DATA" --out "$RUNS/$name" \
      --budget-seconds "$BUDGET" $flags
    echo "$name: exit $?"; } > "$RUNS/$name.log" 2>&1 &
}

# After a stage: one file per run comes back (the device tool returns at most 8), its model, or
# its latest checkpoint if it ran out of time, with its training record, as $OUT/runN.tar; each
# model's test accuracy is logged, and its calibrated copy kept as $RUNS/runN/teacher.keras.
finish() {
  local name latest models=()
  for name in "$@"; do
    { echo "== $name"; grep -v -i warning "$RUNS/$name.log" | tail -n 400; } >> "$OUT/train.log"
    if [ -f "$RUNS/$name/model.keras" ]; then
      models+=("$RUNS/$name/model.keras")
      tar -cf "$OUT/$name.tar" -C "$RUNS/$name" model.keras training.json
    else
      latest=$(cd "$RUNS/$name" 2>/dev/null && ls -t checkpoints/epoch-*.keras 2>/dev/null | head -n 1)
      [ -n "$latest" ] && models+=("$RUNS/$name/$latest") && tar -cf "$OUT/$name.tar" -C "$RUNS/$name" "$latest"
    fi
    [ -f "$OUT/$name.tar" ] && [ "$(stat -c %s "$OUT/$name.tar")" -gt "$FILE_LIMIT" ] &&
      echo "$name: $name.tar is over $FILE_LIMIT bytes and will not come back; its model stays in $RUNS/$name" >> "$OUT/train.log"
  done
  [ ${#models[@]} -gt 0 ] && "$PYTHON" - "$TEST" "$RUNS" "${models[@]}" <<'PY' | tee -a "$OUT/train.log"
import sys
from pathlib import Path

import keras

from classifier.datasets import load_dataset
from classifier.evaluation import calibrate
from classifier.training.trainer import float32_copy  # also registers the custom layers and optimizer

test = load_dataset(sys.argv[1])
runs = Path(sys.argv[2])
for path in sys.argv[3:]:
    model = keras.models.load_model(path)
    p = model.predict(test.images, batch_size=1000, verbose=0)
    pf = model.predict(test.images[:, :, ::-1], batch_size=1000, verbose=0)
    temperature = calibrate(p, test.labels)["temperature"]
    run = runs / Path(path).relative_to(runs).parts[0]
    float32_copy(model, temperature).save(run / "teacher.keras")
    print(path, "test accuracy", (p.argmax(1) == test.labels).mean(), "with flip TTA",
          ((p + pf).argmax(1) == test.labels).mean(), "temperature", temperature)
PY
}

names=() stage=()
for flags in "$@" --; do
  if [ "$flags" = "--" ]; then
    wait
    [ ${#stage[@]} -gt 0 ] && finish "${stage[@]}"
    stage=()
  else
    name=run${#names[@]}
    names+=("$name") stage+=("$name")
    launch "$name" "$flags${EXTRA:+ $EXTRA}"
  fi
done
grep -E "^(==|flags|epoch|loaded|saved|run[0-9]+:)" "$OUT/train.log" | tail -n 60
# fails when any run did or was skipped (a run stopped by its timeout exits 124; its checkpoint
# still came back)
! grep -q -E "^run[0-9]+: (exit [1-9]|skipped)" "$OUT/train.log"
