#!/usr/bin/env bash
# Issue 21's never-built tries, interleaved (one thread, fp32, this 2-core box): each try plans the calibration of
# two other models (d=1536 L=8, d=2560 L=4) and times it in kernel rounds in the same process as the target:
# ROUNDS rounds before its first timed trajectory and after each of three (A B A B A B A); the prediction is from
# every round. Three tries per target into SET/, all kept. As run: `run.sh rounds 8` at commit 09e43c7, then
# `run.sh rounds-24 24` at commit efd15a7, then `run.sh per-trajectory 24` at commit 5d3d36c (each trajectory
# also scored against the rounds around it), then `run.sh per-trajectory-2 24` at commit 8fe4f55, then `run.sh per-trajectory-3 24` at commit eb6bed1 (a Xeon box), then `run.sh per-trajectory-4 24` at commit c13e787 (an EPYC box with 8 MiB L3; one settling trajectory after each gap, `--settle` 1, the default from that commit on), then `run.sh per-trajectory-5 24` at commit 27245e9 (the same box and code, 2026-12-03 afternoon), then `run.sh own-kernels-1 24 --own-kernels` at commit 393d594 (the target's own kernels sampled in the same rounds, kept apart: the error split into composition × interpolation), then `run.sh full-passes-1 24 "--own-kernels --full-passes"` at commit f79d14a (the calibration models' own passes timed after each gap; their time beyond kernels and framework added to the prediction), then `run.sh full-passes-2 24 "--own-kernels --full-passes"` at commit 11a6be2 (the same flags and box, to score it on a quieter stretch), then `run.sh own-kernels-2 24 --own-kernels` at commit 848c6d2 (the own-kernels split a fourth time, without the residual). Then `run.sh row-length-1 24 --own-kernels` at commit 2c69404 (a linear's kernel time moved to the target's row length before the weight-size interpolation; 2026-12-03 evening). Then `run.sh framework-rounds-1 24 --own-kernels` at commit b36113a (the framework sampled in the rounds too). Then `run.sh framework-rounds-2 24 --own-kernels` at commit 232556a (the same code, a second set). Then `run.sh framework-rounds-3 24 --own-kernels` at commit b60d339 (the same prediction code on a fourth
# box, an EPYC with 32 MiB L3, 2026-12-04), then `TARGETS=$D/unseen-d1280-L12.json run.sh framework-rounds-4 24
# --own-kernels` at the same commit (d=1280 alone: it had two tries within the drift bound, the bar asks three). Then `run.sh framework-rounds-5 24
# --own-kernels` at commit c031ab1 (the same code and box, a fifth set). Then `REPEATS=6 run.sh framework-rounds-6 24
# --own-kernels`, `-7` and `-8` at commit b8e79ca, then `-9` at commit f8d7b89 (theory's output wording only
# between): TPOT read as `bench run` reads a step, the mean over steps of each step's median over the timed
# trajectories, and six timed trajectories, each after its own 24 rounds and settling trajectory; every pass kept
# in versus.json; 2026-12-04 night. (whole-calibrations/: the first design's six tries.)
set -euo pipefail
cd "$(dirname "$0")/../.."
D=results/never-built-interleaved-20261202
PY=.venv/bin/python
SET=${1:?set name}
ROUNDS=${2:?rounds per gap}
EXTRA=${3:-}          # more versus options, e.g. --own-kernels
mkdir -p $D/$SET
REPEATS=${REPEATS:-3}  # timed trajectories per try, each after a gap's rounds
TARGETS=${TARGETS:-tinyllama-1.1b $D/unseen-d1280-L12.json}   # TARGETS=... run.sh: fewer targets
for target in $TARGETS; do
  name=$(basename "$target" .json)
  for i in 1 2 3; do
    $PY -m bench.kernels.versus --calibrate-from $D/cal-d1536-L8.json $D/cal-d2560-L4.json --model "$target" \
        --prompt-len 128 --generated 8 --repeats $REPEATS --rounds $ROUNDS $EXTRA --out-dir $D/$SET/$name-$i > /dev/null \
        2> $D/$SET/$name-$i.log
  done
done
