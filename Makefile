# Every target bootstraps .venv itself; nothing needs to be installed by hand first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint bench demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# pytest exits 5 when it collected nothing; that is a failure here, never a pass.
test: $(STAMP)
	@$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi
	@# Every MUST requirement in the catalog needs at least one test.
	$(BIN)/zwfw requirements coverage

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/run.py --out bench/results.json

demo: $(STAMP)
	@$(BIN)/zwfw certify --target conformance/profiles/example.yaml --out out/demo --suites conformance/codes

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
