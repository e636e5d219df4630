#!/bin/bash
# One process per (variant, seed) on the one GPU (python3 there has PyTorch); results are merged
# into $OUT/results.json as they land, so a run stopped at LIMIT seconds still returns what finished.
DATA=$(realpath "${DATA:-$(dirname "$0")/../../.gpu/crops_jpeg.npz}")
cd "$(dirname "$0")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
mkdir -p /tmp/res
start=$(date +%s)
for v in ${VARIANTS:-base base_fullshuffle stem2 stem2_wide base_8ep stem2_16ep}; do
  for s in 1 2 3; do
    PYTHONUNBUFFERED=1 python3 screen.py --data "$DATA" --variant $v --seeds $s --out /tmp/res/$v-$s.json >> $OUT/all.log 2>&1 &
  done
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
