# One-command entry points. `make run` sets up and runs the whole pipeline;
# `make test` sets up and runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# A local mirror of the datasets, for an offline machine (../shared/data when it exists).
ifneq ($(wildcard ../shared/data),)
SENTIMENT_DATA_MIRROR ?= $(abspath ../shared/data)
endif
export SENTIMENT_DATA_MIRROR
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run repro test test-quick lint format track ui bench scale sweep compare predict server server-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/dvc config --local core.analytics false
	touch $@

run: setup          ## set up, then run the whole pipeline on the default data
	dvc repro

repro: run

test: setup         ## set up, then run the tests
	$(BIN)/python -m pytest

test-quick: setup   ## unit tests only (no end-to-end dvc repro): the inner loop
	$(BIN)/python -m pytest -m "not e2e and not server and not spark"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

track: setup        ## log the current pipeline state to MLflow again (e.g. after an outage)
	dvc repro --force --single-item $$(dvc stage list --name-only | grep '^track@')

bench: setup        ## benchmark on the real data (dvc repro --force, baselines, LIME): reports/benchmark.md
	$(BIN)/python -m bench.benchmark

scale: setup        ## every stage at 50k, 200k and 1M reviews: reports/scale.md, reports/scale.png
	$(BIN)/python -m bench.scale

sweep: setup        ## Optuna study from params.yaml's sweep section (STORAGE=postgresql+psycopg2://... joins a shared one)
	$(BIN)/python -m tools.sweep $(if $(STORAGE),--storage "$(STORAGE)")

compare: setup      ## the newest MLflow runs of each dataset side by side (N=5)
	$(BIN)/python -m tools.compare -n $(or $(N),5)

predict: setup      ## make predict TEXT="..." [MODEL=imdb/mlp | models:/sentiment-imdb@champion]
	$(BIN)/python -m tools.predict --model "$(or $(MODEL),models:/sentiment-imdb@champion)" "$(TEXT)"

server: setup       ## team-style MLflow server on :5000: PostgreSQL backend + server-side artifacts
	tools/mlflow_server.sh start .mlflow-server
	@echo 'log to it with: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000'

server-stop:
	tools/mlflow_server.sh stop .mlflow-server

ui: setup           ## MLflow UI on the project's default backend
	mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
