# paperchat: `make chat` starts the web chat, `make test` runs the tests. Both set up .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup chat test eval fit bench bench-docs lint clean

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

# The external ACLSum set (250 ACL papers, 750 summary-as-query questions) lives in build/.
ACLSUM := build/aclsum

eval: $(STAMP)
	$(BIN)/paperchat ingest
	$(BIN)/paperchat eval evals/sets/dev.jsonl --mode extractive --out docs/eval-report
	$(BIN)/paperchat eval evals/sets/dev_hard.jsonl --mode extractive --out docs/eval-report-hard
	$(BIN)/paperchat eval evals/sets/fresh.jsonl --mode extractive --out docs/eval-report-fresh
	$(BIN)/paperchat eval evals/sets/holdout.jsonl --mode extractive --out docs/eval-report-holdout
	$(BIN)/paperchat eval evals/sets/unseen.jsonl --mode extractive --out docs/eval-report-unseen
	$(BIN)/paperchat eval evals/sets/unseen2.jsonl --mode extractive --out docs/eval-report-unseen2
	$(BIN)/paperchat eval evals/sets/unseen3.jsonl --mode extractive --out docs/eval-report-unseen3
	$(BIN)/paperchat eval evals/sets/unseen4.jsonl --mode extractive --out docs/eval-report-unseen4
	# Never fitted on: the held-out test sets (evals.sets.FITTING_SETS, docs/evaluation.md).
	$(BIN)/paperchat eval evals/sets/unseen5.jsonl --mode extractive --out docs/eval-report-unseen5
	$(BIN)/paperchat eval evals/sets/unseen6.jsonl --mode extractive --out docs/eval-report-unseen6
	$(BIN)/paperchat eval evals/sets/unseen7.jsonl --mode extractive --out docs/eval-report-unseen7
	$(BIN)/python -m evals.aclsum $(ACLSUM)
	$(BIN)/paperchat ingest $(ACLSUM)/aclsum-corpus.jsonl --db $(ACLSUM)/db
	$(BIN)/paperchat eval $(ACLSUM)/aclsum.jsonl --db $(ACLSUM)/db --mode extractive --out docs/eval-report-aclsum

# Refit the fusion and abstention constants across evals.sets.FITTING_SETS and ACLSum
# (leave-one-set-out folds in docs/fit-retrieval.json), the answer length across the same
# bundled sets (docs/fit-answer.json) and the missing-word pull over all of them
# (docs/fit-word-pull.json); copy the final ones into rag/settings.py by hand.
fit: eval
	$(BIN)/python scripts/fit_retrieval.py --bundled-db $$($(BIN)/python -c 'from rag.settings import Settings; print(Settings().resolved_db_dir)') \
		--aclsum-db $(ACLSUM)/db --aclsum-set $(ACLSUM)/aclsum.jsonl --out docs/fit-retrieval.json
	$(BIN)/python scripts/fit_answer_length.py --out docs/fit-answer.json
	$(BIN)/python scripts/fit_word_pull.py --aclsum-db $(ACLSUM)/db --aclsum-set $(ACLSUM)/aclsum.jsonl \
		--out docs/fit-word-pull.json

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
