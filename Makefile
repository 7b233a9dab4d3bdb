# Two commands do everything on a fresh machine: `make plan` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
REQUIREMENTS := requirements.txt requirements-dev.txt policies/requirements.txt policies/requirements-sdk.txt \
	azure_facts/pyproject.toml

SCAN_VENV := .venv-scan

.PHONY: plan test lint guard rotate-check bench graphviz clean scan scan-venv

# The stamp is rebuilt only when a requirements file changes, so a warm run installs nothing.
$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## plan: the plan of STACK (default dev) under the mock engine, with the policy pack enforced.
##       make plan STACK=prod ARGS="--json plan.json --graph plan.svg"
plan: $(VENV)/.installed $(if $(findstring --graph,$(ARGS)),graphviz)
	@$(PY) -m kms_aks_tools.plan --stack $(STACK) $(ARGS)

## guard: refuse irreversible KMS changes in a `pulumi preview --json` file (exit 1 findings, 2 bad input).
##        make guard PREVIEW=preview.json ARGS="--overrides guard-overrides.yaml"
guard: $(VENV)/.installed
	$(PY) -m kms_aks_tools.guard $(PREVIEW) $(ARGS)

## rotate-check: each KMS key's expiry and rotation policy for STACK (default dev); exit 1 when they do not
##               leave time to rotate. make rotate-check STACK=prod ARGS="--as-of 2027-01-01"
rotate-check: $(VENV)/.installed
	@$(PY) -m kms_aks_tools.rotation --stack $(STACK) $(ARGS)

## scan-venv: checkov in its own virtualenv (its pins must not constrain the project's), for the ARM export test.
$(SCAN_VENV)/.installed: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	touch $@

scan-venv: $(SCAN_VENV)/.installed

## scan: the plan of STACK as an ARM template, scanned by checkov (docs/arm-export.md).
scan: $(VENV)/.installed $(SCAN_VENV)/.installed
	@mkdir -p out
	@# exit 1 (a mandatory violation) still writes the template; 2 (bad input, program error) stops here.
	@$(PY) -m kms_aks_tools.plan --stack $(STACK) --applied --arm out/$(STACK).arm.json >/dev/null; test $$? -le 1
	$(SCAN_VENV)/bin/checkov --framework arm --skip-download -f out/$(STACK).arm.json

## test: lint, then the whole test suite.
test: $(VENV)/.installed $(SCAN_VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .

## graphviz: installs graphviz's `dot` (for `--graph x.svg`) where the machine allows it.
graphviz:
	@command -v dot >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& (apt-get install -y -qq graphviz >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq graphviz)) \
		|| echo "graphviz not installed: --graph writes DOT only"; }

clean:
	rm -rf $(VENV) $(SCAN_VENV) .pytest_cache .ruff_cache
