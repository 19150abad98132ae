# mmsim: every set-up step lives here. `make backtest` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXP    ?= experiments/default.yaml
ARGS   ?=
GRID   ?=
# Data root: MMSIM_DATA_ROOT if set, else ../shared/data when present, else data/.
MMSIM_DATA_ROOT ?= $(if $(wildcard ../shared/data),../shared/data,data)
export MMSIM_DATA_ROOT

.PHONY: install backtest sweep test bench bench-ab bench-peer lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'  # dev includes every extra (.[all])
	touch $@

install: $(VENV)/.installed

backtest: $(VENV)/.installed
	$(BIN)/mmsim backtest $(EXP) $(ARGS)

# make sweep EXP=experiments/X.yaml GRID="policy.gamma=0.01,0.1 latency.entry_nanos=1e6,5e6"
# (each GRID word becomes a --grid; ARGS="--jobs 2 --out runs/my-sweep" passes options)
sweep: $(VENV)/.installed
	$(BIN)/mmsim sweep $(EXP) $(foreach g,$(GRID),--grid '$(g)') $(ARGS)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_all.py $(ARGS)
	$(BIN)/python benchmarks/bench_modelmarket.py

# old commit vs the working tree, interleaved in one run, as ratios new/old:
# make bench-ab BASE=5ce342c ARGS="--rounds 5 --compile"
BASE ?= HEAD
bench-ab: $(VENV)/.installed
	$(BIN)/python benchmarks/ab.py --base $(BASE) $(ARGS)

# parity with hftbacktest (installed from PyPI into benchmarks/.peer-venv on first use)
bench-peer: $(VENV)/.installed
	$(BIN)/python benchmarks/peer_hftbacktest.py $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check mmsim tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
