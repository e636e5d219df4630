# Every target runs inside the project environment (infra/env/run.sh builds it on first use).
ENV := infra/env/run.sh
ARGS ?=
DATA ?= ../shared/data/blood-cells

.PHONY: run test test-research setup full lock clean-env prove-debian13
run:    ## set up if needed, then run the pipeline on the bundled sample (ARGS="--epochs 5" etc.)
	$(ENV) python -m pipeline.local_runner $(ARGS)

test:   ## set up if needed, then run the test suite: unit tests, then the end-to-end ones (pipeline, browser, CDN)
	$(ENV) python -m pytest tests/unit tests/e2e $(ARGS)

test-research: ## the research code's own tests (research/tests), not part of `make test`
	$(ENV) python -m pytest research/tests $(ARGS)

setup:  ## only build (or find) the environment
	infra/env/setup.sh

full:   ## the pipeline on the full dataset (DATA=..., default ../shared/data/blood-cells), into runs/full
	$(ENV) python -m pipeline.local_runner --data-dir "$(DATA)" --output-dir runs/full \
	  --set evaluation.min_accuracy=0.8 $(ARGS)

lock:   ## re-resolve locks/pipeline.lock after editing requirements/pipeline.in
	infra/env/lock.sh

clean-env: ## delete every cached environment except the current one
	infra/env/setup.sh --prune

prove-debian13: ## the venv branch of setup from a bare Debian 13, then make test there (root, ~15 min)
	infra/env/prove_debian13.sh
