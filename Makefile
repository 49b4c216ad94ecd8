# Set-up and the two main jobs. Each target creates .venv with pip on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/correlax: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	$(BIN)/pip install -q -e '.[test,weights,dicom,pacs,cpu]'
	touch $@

install: $(BIN)/correlax

demo: install
	$(BIN)/correlax demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
