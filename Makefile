# mmsim: every set-up step lives here. `make backtest` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXP    ?= experiments/default.yaml
ARGS   ?=
# Data root: MMSIM_DATA_ROOT if set, else ../shared/data when present, else data/.
MMSIM_DATA_ROOT ?= $(if $(wildcard ../shared/data),../shared/data,data)
export MMSIM_DATA_ROOT

.PHONY: install backtest test bench lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

backtest: $(VENV)/.installed
	$(BIN)/mmsim backtest $(EXP) $(ARGS)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_all.py $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check mmsim tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
