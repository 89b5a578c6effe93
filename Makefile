# The way in: `make demo` (the stack with simulated visitors), `make stack`,
# `make test`. Each target sets up what it needs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo stack test bench-policies bench-load bench-scale bench-context bench-experiments bench-factorial bench-guardrails bench-batch bench-archive-backlog clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m croupier.scripts.stack --simulate

stack: $(STAMP)
	$(PY) -m croupier.scripts.stack

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench-policies: $(STAMP)
	$(PY) -m bench.policies

bench-load: $(STAMP)
	$(PY) -m bench.load --json bench/out/load.json

bench-scale: $(STAMP)
	$(PY) -m bench.scale

bench-context: $(STAMP)
	$(PY) -m bench.context

bench-experiments: $(STAMP)
	$(PY) -m bench.experiments --json bench/out/experiments.json

bench-factorial: $(STAMP)
	$(PY) -m bench.factorial

bench-guardrails: $(STAMP)
	$(PY) -m bench.guardrails

bench-batch: $(STAMP)
	$(PY) -m bench.batch

bench-archive-backlog: $(STAMP)
	$(PY) -m bench.archive_backlog

clean:
	rm -rf $(VENV) run .pytest_cache
