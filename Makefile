# Two commands set everything up on a fresh machine:
#   make demo   virtualenv + install + sample data -> ingest -> train every model -> recommend/search
#               -> evaluate them side by side (SQLite, ./demo-home)
#   make test   virtualenv + install with test extras + the fast test suite (SQLite and PostgreSQL)
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
HOME_DIR ?= demo-home
RECSYS = $(BIN)/recsys --home $(HOME_DIR)

.PHONY: install demo test test-slow lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# constraints.txt pins torch to the local CPU build (plain sentence-transformers pulls a 3 GB CUDA torch)
$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,spark]'
	touch $@

install: $(VENV)/.installed

# The main job on an embedded default: a generated shop (3,000 users, 600 products), SQLite, ./demo-home.
demo: install
	$(RECSYS) sample $(HOME_DIR)/data --users 3000 --items 600 --ratings 30000 --gzip
	$(RECSYS) ingest $(HOME_DIR)/data/meta.jsonl.gz $(HOME_DIR)/data/reviews.jsonl.gz
	for model in als ease itemknn rp3beta popularity ss; do $(RECSYS) train $$model || exit 1; done
	$(RECSYS) status
	@USER_ID=$$(gzip -dc $(HOME_DIR)/data/reviews.jsonl.gz | head -1 | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["user_id"])'); \
	  echo "+ recsys recommend user $$USER_ID --explain"; $(RECSYS) recommend user $$USER_ID -n 5 --explain; \
	  ITEM=$$($(RECSYS) recommend user $$USER_ID -n 1 --json | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["item_id"])'); \
	  echo "+ recsys recommend item $$ITEM"; $(RECSYS) recommend item $$ITEM -n 5; \
	  echo "+ recsys recommend item $$ITEM --model ease"; $(RECSYS) recommend item $$ITEM -n 5 --model ease
	$(RECSYS) recommend user a-new-visitor -n 5
	$(RECSYS) search "wireless earbuds for running" -k 5
	$(RECSYS) search "yoga mat" --mode hybrid -k 5
	$(RECSYS) evaluate
	$(RECSYS) serve --get /status
	@echo "Serve it: $(RECSYS) serve   then open the dashboard at http://127.0.0.1:8000/  (JSON API: curl 127.0.0.1:8000/status)"

test: install
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

lint: install
	$(BIN)/ruff check recsys tests benchmarks
	$(BIN)/ruff format --check recsys tests benchmarks
	$(BIN)/mypy recsys

clean:
	rm -rf $(VENV) $(HOME_DIR) .pytest_cache
