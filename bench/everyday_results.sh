#!/usr/bin/env bash
# The tables of trainer/results/everyday.md, by hand (about 3 hours on 2 cores):
#   bash bench/everyday_results.sh [COREL] [OI5] [RUNS] [CACHE]
#   python bench/summarise_runs.py RUNS
#   python bench/everyday.py --model assets/default --model OLD_DEFAULT_BUNDLE
# Corel-5K's fixed zero-shot split, 3 seeds, best epoch on the held-out fold; each run's
# best bundle is then evaluated on open_images_5 (validation: never trained on).
set -eu
COREL=${1:-../shared/data/corel5k}
OI5=${2:-../shared/data/open_images_5}
RUNS=${3:-runs/everyday}
CACHE=${4:-runs/cache}
BASE="--lr 1e-3 --epochs 10 --lr-halve-epoch 6 --d-model 128 --heads 4 --depth 2 --normalize-rows"
# The new default's recipe (R2): an ImageNet prior row (top 50 classes at softmax temperature
# 2, named by lemmas + 1.5 x definition, length 1.1), distillation of the trained rows towards
# the same embedding, and confident ImageNet classes as extra labels.
R2="--prior row --prior-temperature 2 --prior-scale 1.1 --class-naming lemmas --class-definition 1.5 \
    --distill 1.0 --distill-top 50 --distill-temperature 2 --imagenet-labels 5"
train() { # NAME SEED ARGS...
    local name=$1 seed=$2; shift 2
    local out="$RUNS/$name-seed$seed"
    OMP_NUM_THREADS=1 epsilon-train corel5k --data "$COREL" --cache "$CACHE/corel5k" --out "$out" \
        --seed "$seed" --quiet --workers 0 "$@" > "$out.log" 2>&1
    OMP_NUM_THREADS=1 epsilon-train evaluate "$out/best" --dataset coco --data "$OI5" --cache "$CACHE/oi5" \
        --quiet --workers 0 --json "$out/oi5.json" >> "$out.log"
}
conse() { # NAME SEED ARGS...
    local name=$1 seed=$2; shift 2
    epsilon-train corel5k --data "$COREL" --cache "$CACHE/corel5k" --out "$RUNS/$name-seed$seed" --seed "$seed" \
        --method conse --quiet --workers 0 "$@" > "$RUNS/$name-seed$seed.log"
}
mkdir -p "$RUNS"
for seed in 0 1 2; do
    conse conse-classic "$seed" --conse-top 10
    conse conse-text "$seed" --class-naming lemmas --class-definition 1.0 --conse-top 50
    conse conse-prior-text "$seed" --class-naming lemmas --class-definition 1.5 --conse-top 50 --conse-temperature 2
done
for seed in 0 1 2; do
    train new-full "$seed" $BASE $R2 &
    train fast0tag "$seed" --method fast0tag --lr 1e-3 --epochs 15 --lr-halve-epoch 0
    wait
    train new-gpa "$seed" $BASE $R2 --variant gpa &
    train new-gfp "$seed" $BASE $R2 --variant gfp
    wait
    train new-backbone "$seed" $BASE $R2 --variant backbone &
    train new-M2 "$seed" $BASE $R2 -M 2
    wait
done
