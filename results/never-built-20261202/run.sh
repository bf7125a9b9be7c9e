#!/usr/bin/env bash
# The never-built tries of issue 21, as run (one thread, fp32, this 2-core box): calibrate from two other models,
# then predict and measure interleaved (A-B-A) three times each for tinyllama-1.1b and a width/depth neither has.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=results/never-built-20261202
PY=.venv/bin/python
$PY -m bench kernels --model $D/cal-d1536-L8.json $D/cal-d2560-L4.json --batch 1 --prompt-len 128 --generated 8 \
    --out $D/cal-others.json 2> $D/cal-others.log
for target in tinyllama-1.1b $D/unseen-d1280-L12.json; do
  name=$(basename "$target" .json)
  $PY -m theory --model "$target" --hardware $D/cal-others.json --batch 1 --prompt-len 128 --generated 8 \
      > $D/predict-$name.txt 2>&1
  for i in 1 2 3; do
    $PY -m bench.kernels.versus --calibration $D/cal-others.json --model "$target" --prompt-len 128 --generated 8 \
        --repeats 3 > $D/versus-$name-$i.json 2> $D/versus-$name-$i.log
  done
done
