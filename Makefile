# paperchat: `make chat` starts the web chat, `make test` runs the tests. Both set up .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup chat test eval bench bench-docs lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

chat: $(STAMP)
	$(BIN)/paperchat serve

test: $(STAMP)
	$(BIN)/python -m pytest

eval: $(STAMP)
	$(BIN)/paperchat ingest
	$(BIN)/paperchat eval evals/sets/dev.jsonl --mode extractive --out docs/eval-report
	$(BIN)/paperchat eval evals/sets/dev_hard.jsonl --mode extractive --out docs/eval-report-hard

# Reports go under the data directory; bench-docs also regenerates docs/bench-report.md and the
# chart docs/performance.png (docs/performance.md is hand-written and never overwritten).
bench: $(STAMP)
	$(BIN)/paperchat bench

bench-docs: $(STAMP)
	$(BIN)/paperchat bench --docs docs

lint: $(STAMP)
	$(BIN)/ruff check rag ui evals tests
	$(BIN)/mypy rag ui evals

clean:
	rm -rf $(VENV) *.egg-info
