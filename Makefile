# Two commands do everything on a machine with only Python 3:
#   make demo   -- install (once) and run the main job
#   make test   -- install (once) and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: install demo test lint format bench docs clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) -e '.[test,mnist5k,tensorboard]'
	touch $(STAMP)

demo: install
	$(BIN)/pyro-vigen compare --data ring8 --seeds 3 --out runs/demo
	@echo "open runs/demo/report.html (summary: runs/demo/summary.json, Markdown: runs/demo/report.md)"

test: install
	scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python benchmarks/run.py

# The Sphinx site (docs/_build/html). Offline; warnings are errors.
# PYRO_VIGEN_DOCS_ONLINE=1 make docs adds intersphinx links (needs the network).
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(PIP) -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info docs/_build
