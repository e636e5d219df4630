#!/bin/bash
# One process per (variant, seed) on the one GPU (python3 there has PyTorch); results are merged
# into $OUT/results.json as they land, so a run stopped at LIMIT seconds still returns what finished.
# With FOLDS=k: one process per (variant, seed, fold) of cross-validation by cell, seeds SEEDS (default 1),
# on DATA from export_cells.py (default .gpu/cells/train_cells.npz); score with cv_report.py.
if [ -n "$FOLDS" ]; then DEFAULT_DATA=.gpu/cells/train_cells.npz; else DEFAULT_DATA=.gpu/crops_jpeg.npz; fi
DATA=$(realpath "${DATA:-$(dirname "$0")/../../$DEFAULT_DATA}")
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
rm -rf /tmp/res && mkdir -p /tmp/res   # a warm machine keeps /tmp: results.json holds only this call's runs
start=$(date +%s)
for v in ${VARIANTS:-base base_fullshuffle stem2 stem2_wide base_8ep stem2_16ep}; do
  if [ -n "$FOLDS" ]; then
    for s in ${SEEDS:-1}; do for f in $(seq 0 $((FOLDS - 1))); do
      PYTHONUNBUFFERED=1 python3 screen.py --data "$DATA" --variant $v --seeds $s --folds $FOLDS --fold $f \
        --out /tmp/res/$v-$s-fold$f.json >> $OUT/all.log 2>&1 &
    done; done
  else
    for s in 1 2 3; do
      PYTHONUNBUFFERED=1 python3 screen.py --data "$DATA" --variant $v --seeds $s --out /tmp/res/$v-$s.json >> $OUT/all.log 2>&1 &
    done
  fi
done
merge() { python3 - <<'PY'
import glob, json, os
res = []
for f in sorted(glob.glob("/tmp/res/*.json")):
    try: res.append(json.load(open(f)))
    except ValueError: pass
json.dump(res, open(os.environ["OUT"] + "/results.json", "w"), indent=1)
print(len(res), "results")
PY
}
while [ -n "$(jobs -r)" ] && [ $(( $(date +%s) - start )) -lt ${LIMIT:-420} ]; do sleep 15; merge > /dev/null; done
merge; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
echo "elapsed $(( $(date +%s) - start )) s"
