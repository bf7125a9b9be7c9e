#!/usr/bin/env bash
# As run at commit a492523 (whole calibrations pooled; superseded by ../run.sh): issue 21's never-built tries, interleaved (one thread, fp32, this 2-core box): each try calibrates from two other
# models (d=1536 L=8, d=2560 L=4) in the same process as the target, before its first timed trajectory and after
# each of three (A B A B A B A), and predicts from the four calibrations pooled. Three tries per target, all kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=results/never-built-interleaved-20261202
PY=.venv/bin/python
for target in tinyllama-1.1b $D/unseen-d1280-L12.json; do
  name=$(basename "$target" .json)
  for i in 1 2 3; do
    $PY -m bench.kernels.versus --calibrate-from $D/cal-d1536-L8.json $D/cal-d2560-L4.json --model "$target" \
        --prompt-len 128 --generated 8 --repeats 3 --out-dir $D/whole-calibrations/$name-$i > /dev/null 2> $D/whole-calibrations/$name-$i.log
  done
done
