# Each target sets itself up on a fresh machine: it creates .venv and installs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast lint demo install

install: $(STAMP)

# setuptools announces how it made the editable install (a meta path finder, as cli/ installs
# as tfcyclegan_cli) with an informational warning, which pip shows as a BuildBackendWarning;
# this hides that one message. A real packaging problem still shows (tests/test_install.py).
QUIET_EDITABLE := ignore:Editable installation

$(STAMP): requirements.txt setup.py pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS="$(QUIET_EDITABLE)" $(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# The whole suite (12 min 55 s on 2 quiet cores, as README "Tests" says); test-fast skips the tests marked slow.
test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Trains on the built-in, offline demo domains (flat shapes <-> striped shapes) at 64px.
demo: $(STAMP)
	$(VENV)/bin/tfcyclegan fit --domain-a demo:flat --domain-b demo:striped --run-dir runs/demo \
		--image-size 64 --load-size 64 --ngf 32 --ndf 32 --blocks 4 --disc-layers 2 --epochs 9 --decay-epoch 4 \
		--steps-per-epoch 200
