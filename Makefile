# Every target runs inside the project environment (infra/env/run.sh builds it on first use).
ENV := infra/env/run.sh
ARGS ?=

.PHONY: run test setup full lock clean-env
run:    ## set up if needed, then run the pipeline on the bundled sample (ARGS="--epochs 5" etc.)
	$(ENV) python -m pipeline.run_local $(ARGS)

test:   ## set up if needed, then run the whole test suite
	$(ENV) python -m pytest $(ARGS)

setup:  ## only build (or find) the environment
	infra/env/setup.sh

full:   ## the pipeline on the full dataset beside the repo (../shared/data/blood-cells)
	$(ENV) python -m pipeline.run_local --data-dir ../shared/data/blood-cells --output-dir runs/full \
	  --set evaluation.min_accuracy=0.8 $(ARGS)

lock:   ## re-resolve locks/pipeline.lock after editing requirements/pipeline.in
	infra/env/lock.sh

clean-env: ## delete every cached environment except the current one
	infra/env/setup.sh --prune
