# Two commands do everything on a fresh machine: `make plan` and `make test`.
# Every target that runs something is a shortcut for the `kms-aks` command line (see `kms-aks --help`);
# CI calls `kms-aks` directly, because its exit codes are exact (0 ok, 1 blocked, 2 bad input).
PYTHON ?= python3
# Python's default is to cache compiled modules in __pycache__ (ignored by git). Some CI images and sandboxes set
# PYTHONDONTWRITEBYTECODE, and then every process of a test run (the suite's workers, each `kms-aks` and policy
# pack subprocess) compiles the project and the SDKs from source again: about a fifth of a warm `make test`.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
PY := $(VENV)/bin/python
KMS_AKS := $(VENV)/bin/kms-aks
STACK ?= dev
REQUIREMENTS := requirements.txt requirements-dev.txt policies/requirements.txt policies/requirements-sdk.txt \
	azure_facts/pyproject.toml pyproject.toml
SCAN_VENV := .venv-scan
# ARGS is passed on unexpanded, with every `$` escaped for the shell: Pulumi URNs contain `$`
# (`...KmsAksCluster$azure-native:...`), which make and the shell would otherwise both eat.
SAFE_ARGS = $(subst $$,\$$,$(value ARGS))

.DEFAULT_GOAL := help
.PHONY: help plan test e2e e2e-k8s fixtures lint guard rotate-check reencrypt key-status check-config bench graphviz clean scan \
	comment-screenshots \
	scan-venv sandbox-up sandbox-preview sandbox-destroy sandbox-fixtures

## help: this list.
help:
	@echo "Shortcuts for the kms-aks command line (.venv/bin/kms-aks --help):"
	@awk '/^## [A-Za-z0-9_.-]+:/ { sub(/^## /, "  make "); print; next } /^##  / { sub(/^##/, "    "); print }' $(MAKEFILE_LIST)

# The stamp is rebuilt only when a requirements file changes, so a warm run installs nothing.
$(VENV)/.installed: $(REQUIREMENTS)
	@echo "Installing the project into $(VENV) (first run: about 2 minutes; pip's progress follows)."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check --no-deps -e .
	touch $@
	@echo "Installed. Next time nothing is installed unless a requirements file changes."

# The policy pack's own virtualenv, as the Pulumi CLI runs it (PulumiPolicy.yaml: virtualenv: venv).
POLICY_VENV := policies/venv/.installed
$(POLICY_VENV): policies/requirements.txt policies/requirements-sdk.txt azure_facts/pyproject.toml
	@echo "Installing the policy pack into policies/venv (as CI does: .ci/pulumi-stack policy-venv)."
	@PYTHON=$(PYTHON) bash .ci/pulumi-stack policy-venv

## plan: the plan of STACK (default dev) under the mock engine, with the policy pack enforced.
##       make plan STACK=prod ARGS="--json plan.json --graph plan.svg"   (= kms-aks plan --stack prod ...)
plan: $(VENV)/.installed $(POLICY_VENV)
	@$(KMS_AKS) plan --stack $(STACK) $(SAFE_ARGS)

## guard: refuse irreversible KMS changes in a `pulumi preview --json` file (exit 1 findings, 2 bad input).
##        make guard PREVIEW=preview.json ARGS="--overrides guard-overrides.yaml"   (= kms-aks guard ...)
guard: $(VENV)/.installed
	@$(KMS_AKS) guard $(PREVIEW) $(SAFE_ARGS)

## rotate-check: each KMS key's expiry and rotation policy for STACK (default dev); exit 1 when they do not
##               leave time to rotate. make rotate-check STACK=prod ARGS="--as-of 2027-01-01"
rotate-check: $(VENV)/.installed
	@$(KMS_AKS) rotate-check --stack $(STACK) $(SAFE_ARGS)

## reencrypt: rewrite every Secret of STACK's cluster under its current KMS key and append the record to
##            rotations/<STACK>.yaml (docs/rotation.md, step 5). make reencrypt STACK=dev ARGS="--context sandbox-dev"
reencrypt: $(VENV)/.installed
	@$(KMS_AKS) reencrypt --stack $(STACK) $(SAFE_ARGS)

## key-status: the key STACK pins, the key its API server uses and reads, and whether it has a complete
##             re-encryption record (exit 0; 1 when not). make key-status STACK=dev ARGS="--context sandbox-dev"
key-status: $(VENV)/.installed
	@$(KMS_AKS) key-status --stack $(STACK) $(SAFE_ARGS)

## check-config: validate Pulumi.<STACK>.yaml only (fast; exit 2 with every problem named).
check-config: $(VENV)/.installed
	@$(KMS_AKS) check-config --stack $(STACK)

# checkov in its own virtualenv (its pins must not constrain the project's), for the ARM export test and `make scan`.
$(SCAN_VENV)/.installed: requirements-scan.txt
	@echo "Installing checkov into $(SCAN_VENV) (requirements-scan.txt), for make scan and the ARM export test: about 30 s, once."
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	touch $@

## scan-venv: create .venv-scan, checkov's own virtualenv (make scan and make test do it when needed).
scan-venv: $(SCAN_VENV)/.installed

## scan: the plan of STACK as an ARM template, scanned by checkov (docs/arm-export.md); checkov's report, then
##       which findings are the documented ones; fails only on a finding beyond them.
scan: $(VENV)/.installed $(SCAN_VENV)/.installed $(POLICY_VENV)
	@mkdir -p out
	@# exit 1 (a mandatory violation) still writes the template; 2 (bad input, program error) stops here.
	@$(KMS_AKS) plan --stack $(STACK) --applied --arm out/$(STACK).arm.json >/dev/null; test $$? -le 1
	@# checkov's own report on the terminal and as JSON; its exit code is judged below, against the documented findings.
	@BC_SKIP_MAPPING=TRUE $(SCAN_VENV)/bin/checkov --framework arm --skip-download -f out/$(STACK).arm.json \
		-o cli -o json --output-file-path console,out/$(STACK).checkov.json; test $$? -le 1
	@$(KMS_AKS) scan --stack $(STACK) out/$(STACK).checkov.json

## test: lint, then the whole test suite on both cores (the real-CLI scenarios are `make e2e`). Installs graphviz
##       first when it is missing (as root, with apt-get: make graphviz): the suite renders the plan's graph.
# --dist loadfile keeps each test file on one worker, so a file's module fixtures (recorded stacks) are built once.
test: $(VENV)/.installed $(SCAN_VENV)/.installed $(POLICY_VENV) graphviz
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --ignore=tests/e2e --ignore=tests/e2e_k8s $(PYTEST_ARGS)

## e2e: the scenarios under the real Pulumi CLI and engine, against the Azure stand-in (docs/real-cli.md).
##      The first run builds the CLI from its Go module into .tools/ (needs Go); later runs reuse it.
e2e: $(VENV)/.installed
	@bash e2e/toolchain/build.sh >/dev/null
	$(PY) -m pytest -q -p no:xdist tests/e2e $(PYTEST_ARGS)

## e2e-k8s: the scenarios on a real kube-apiserver and etcd, Secrets encrypted by our KMS v2 plugin with a Key
##          Vault stand-in (docs/real-cluster.md). The first run builds them from their Go modules into .tools/.
e2e-k8s: $(VENV)/.installed
	@bash e2e/k8s/build.sh >/dev/null
	cd e2e/k8s/kmsplugin && go test ./...
	$(PY) -m pytest -q -p no:xdist tests/e2e_k8s $(PYTEST_ARGS)

## sandbox-up: rehearse offline: deploy STACK (default dev) with the real Pulumi CLI into the Azure stand-in, as the
##             deploy workflow does (docs/sandbox.md; the first run builds the CLI, needs Go). = kms-aks sandbox up
sandbox-up: $(VENV)/.installed $(POLICY_VENV)
	@$(KMS_AKS) sandbox up --stack $(STACK)

## sandbox-preview: after editing Pulumi.<STACK>.yaml: the real preview, the pack's and the guard's verdicts, the
##                  PR comment, as CI shows them. = kms-aks sandbox preview
sandbox-preview: $(VENV)/.installed $(POLICY_VENV)
	@$(KMS_AKS) sandbox preview --stack $(STACK)

## sandbox-destroy: delete STACK's resources from the stand-in and drop it from the sandbox. = kms-aks sandbox destroy
sandbox-destroy: $(VENV)/.installed $(POLICY_VENV)
	@$(KMS_AKS) sandbox destroy --stack $(STACK)

## sandbox-fixtures: re-record tests/fixtures/sandbox/ (real previews of real changes, under the real CLI).
sandbox-fixtures: $(VENV)/.installed $(POLICY_VENV)
	$(PY) tests/fixtures/sandbox/record.py

## fixtures: re-record the guard's previews (tests/fixtures/recorded/) with the real Pulumi CLI against the stand-in.
##           make fixtures ARGS="dev-key-rotation"   records one scenario (tests/e2e/record_previews.py lists them)
fixtures: $(VENV)/.installed
	@bash e2e/toolchain/build.sh >/dev/null
	$(PY) -m tests.e2e.record_previews $(SAFE_ARGS)

## lint: ruff only.
lint: $(VENV)/.installed
	$(PY) -m ruff check .

## bench: the benchmarks (benchmarks/): a warm plan against its floor, the policy pack at scale, plan --all at 10/50 stacks.
bench: $(VENV)/.installed $(POLICY_VENV)
	$(PY) benchmarks/bench_plan.py
	$(PY) benchmarks/bench_policy_pack.py
	$(PY) benchmarks/bench_fleet.py

## graphviz: install graphviz's `dot` with apt-get (needs root), for `--graph x.svg`; make test needs it too.
graphviz:
	@if command -v dot >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no apt-get here: install graphviz with your package manager (brew install graphviz)"; exit 2; \
	elif [ "$$(id -u)" != 0 ]; then echo "run as root (sudo make graphviz) or: sudo apt-get install graphviz"; exit 2; \
	else echo "apt-get install graphviz"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz); fi

## comment-screenshots: docs/screenshots/*.png, a refused and a passed PR comment as GitHub renders them, in
##                      headless Chromium (installed with apt-get when missing, as root).
comment-screenshots: $(VENV)/.installed
	$(PY) docs/screenshots/comments.py

## clean: remove the venv and caches.
clean:
	rm -rf $(VENV) $(SCAN_VENV) .pytest_cache .ruff_cache
