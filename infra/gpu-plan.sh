#!/usr/bin/env bash
# The next training for a session lent the GPU machine, as one call of the device tool from the
# repository root, after `make gpu-kit` (docs/model.md, "Next"):
#
#   run(command='infra/gpu-plan.sh', carry=[".devdata", ".whl"], timeout_s=590)
#
# Stage 1: three teachers of three recipes side by side, BUDGET seconds of steps each. Stage 2:
# two students side by side, STUDENT_BUDGET seconds each, taught by those three and the kept wide
# network on their own augmented, mixed images: the shipped network from its weights, for
# accuracy, and the same pruned to 32/64/160/160 (86M multiply-adds: about 2.8 ms untrained on
# the AVX2-only CPUs, where the shipped one takes 3.2 to 3.5). About 530 s on an H100, by
# estimate (docs/model.md, "Next"). Each run's model comes back in $OUT as runN.tar; export
# them here.
set -u
cd "$(dirname "$0")/.." || exit 1
# The call's 590 s: the script ends by DEADLINE whatever happens, each stage's runs loading and
# compiling within SLACK; a stage that starts late gets a smaller budget, not a killed schedule.
export BUDGET=${BUDGET:-120} SLACK=${SLACK:-120} DEADLINE=${DEADLINE:-560}
STUDENT_BUDGET=${STUDENT_BUDGET:-200}
SHIPPED=layers/classifier/classifier/baseline/model.keras
TEACH="--teacher models/v20261127-baseline/model.keras,@run0,@run1,@run2 --distillation 0.8 \
--teacher-views augmented --mixup 0.5 --peak-lr 0.05 --policy mixed_bfloat16 --epochs 100 \
--budget-seconds $STUDENT_BUDGET"
exec infra/train-on-gpu.sh \
  "--widths 32,64,256,256 --policy mixed_bfloat16 --epochs 200 --cutout 12 --seed 1" \
  "--widths 64,128,256,256 --policy mixed_bfloat16 --epochs 200 --cutout 12" \
  "--recipe airbench --widths 24,64,256,256 --epochs 40 --cutout 12 --policy mixed_bfloat16" \
  -- \
  "--init $SHIPPED $TEACH" \
  "--init $SHIPPED --widths 32,64,160,160 $TEACH"
