# Every target bootstraps .venv itself; nothing needs to be installed by hand first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test test-fast lint bench demo demo-down clean

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

# Everything but the slow tiers (deploy, e2e, sandbox, selftest: markers that tests/conftest.py
# gives by directory), then the same coverage check.
FAST_TESTS := not deploy and not e2e and not sandbox and not selftest

test-fast: $(STAMP)
	@$(BIN)/pytest -m "$(FAST_TESTS)"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-fast: no tests were collected" >&2; exit 1; fi; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi
	$(BIN)/zwfw requirements coverage

# Type checking: what is checked, and how strictly, is in pyproject.toml ([tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/run.py --out bench/results.json

# The demo: deploy the local inventory (national side, provinces A and B) with Ansible into
# $(DEMO_STATE), then certify province A against it into out/demo. Tokens last minutes, so
# fresh ones are minted right before the run.
DEMO_STATE ?= var/deploy
DEMO_OUT   ?= out/demo
DEMO_ENV    = PATH="$(CURDIR)/$(BIN):$$PATH" ANSIBLE_CONFIG="$(CURDIR)/playbooks/ansible.cfg"
DEMO_VARS   = -e zwfw_state_dir="$(abspath $(DEMO_STATE))"

demo: $(STAMP)
	cd playbooks && $(DEMO_ENV) ansible-playbook -i inventories/local site.yml $(DEMO_VARS)
	$(BIN)/zwfw deploy credentials --plan $(DEMO_STATE)/certify/plan.json --province province-a
	@set -a; . $(DEMO_STATE)/certify/province-a.env; set +a; \
	$(BIN)/zwfw certify --target $(DEMO_STATE)/certify/province-a.yaml --out $(DEMO_OUT); rc=$$?; \
	echo; \
	if [ $$rc -eq 0 ]; then echo "demo: province A (340000) is CERTIFIED"; \
	else echo "demo: province A (340000) is NOT certified (zwfw certify exit $$rc)" >&2; fi; \
	echo "report: $(DEMO_OUT)/report.html ($(DEMO_OUT)/report.json)"; \
	echo "check the sealed report: $(BIN)/zwfw verify-report $(DEMO_OUT)"; \
	echo "stop the deployment: make demo-down"; \
	exit $$rc

demo-down: $(STAMP)
	cd playbooks && $(DEMO_ENV) ansible-playbook -i inventories/local teardown.yml $(DEMO_VARS)

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis
