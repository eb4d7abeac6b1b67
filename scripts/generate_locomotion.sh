#!/usr/bin/env bash
# Generate the locomotion datasets of the report (D4RL recipe on gymnasium MuJoCo v5, rolled out from the
# PPO behaviour policies shipped with ractd), one after the other, each logged to $LOG_DIR/<name>.log,
# then print a summary table.
#
#   scripts/generate_locomotion.sh                      # all fifteen: 3 envs x 5 levels
#   scripts/generate_locomotion.sh hopper-medium ...    # selected datasets
#
# Environment: RACTD_DATA_DIR (dataset root, default ~/.ractd/datasets), MINARI_DATASETS_PATH,
# SEED (default 0), STEPS (dataset size; empty = D4RL's), MINARI (1 = also write the Minari copy, default 1),
# LOG_DIR (default runs/datagen), PYTHON. Per env, medium and expert come before medium-expert, which then
# reuses their arrays. One job at a time, single-threaded, niced: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SEED=${SEED:-0}
STEPS=${STEPS:-}
MINARI=${MINARI:-1}
LOG_DIR=${LOG_DIR:-runs/datagen}
mkdir -p "$LOG_DIR"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

if [ "$#" -gt 0 ]; then
  names=("$@")
else
  names=()
  for env in hopper walker2d halfcheetah; do
    names+=("$env-random" "$env-medium" "$env-expert" "$env-medium-expert" "$env-medium-replay")
  done
fi

for name in "${names[@]}"; do
  echo "$(date '+%F %T') generating $name (log: $LOG_DIR/$name.log)"
  nice -n 10 "$PYTHON" -u - "$name" "$SEED" "$STEPS" "$MINARI" > "$LOG_DIR/$name.log" 2>&1 <<'PY'
import json
import sys

from ractd.data.generate.locomotion import generate_locomotion
from ractd.data.sources import generated_dataset_path

name, seed, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if sys.argv[3] else None
summary = generate_locomotion(name, generated_dataset_path(name).parent, seed, steps, progress=False,
                              minari=sys.argv[4] == "1")
print(json.dumps(summary, indent=2))
PY
done

"$PYTHON" - "${names[@]}" <<'PY'
import json
import sys

from ractd.data.generate.ship import record_datasets
from ractd.data.sources import generated_dataset_path

# the report's dataset table reads results/report/datasets.json (python scripts/reproduce.py report)
record_datasets([generated_dataset_path(name).parent for name in sys.argv[1:]])

print(f"{'name':<24}{'steps':>10}{'episodes':>10}{'normalized return':>22}{'time [s]':>10}  behaviour policy return")
for name in sys.argv[1:]:
    path = generated_dataset_path(name).parent / "generation.json"
    if not path.exists():
        print(f"{name:<24} (missing: {path})")
        continue
    g = json.loads(path.read_text())
    score = f"{g['normalized_mean']:.1f} ± {g['normalized_std']:.1f}"
    behaviour = ", ".join(f"{k} {v:.0f}" for k, v in g["behaviour_return"].items()) or "-"
    print(f"{g['name']:<24}{g['steps']:>10,}{g['episodes']:>10,}{score:>22}{g['seconds']:>10.0f}  {behaviour}")
PY
