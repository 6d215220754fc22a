# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-latest constraints bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Exact versions from constraints.txt (the set the tests pass with); pyproject.toml keeps ranges.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/protgan demo --out demo-run

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Dependency drift: the tests against the newest versions pyproject.toml allows (a separate venv).
test-latest:
	$(PY) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet --upgrade -e '.[dev]'
	PROTGAN_UNPINNED=1 .venv-latest/bin/python -m pytest -q

# After an upgrade that passes `make test-latest`: pin it.
constraints: $(STAMP)
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf demo-run .pytest_cache
