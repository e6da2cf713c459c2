# Each target sets itself up on a fresh machine: it creates .venv and installs on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Trains on the built-in, offline demo domains (flat shapes <-> striped shapes) at 64px.
demo: $(STAMP)
	$(VENV)/bin/tfcyclegan fit --domain-a demo:flat --domain-b demo:striped --run-dir runs/demo \
		--image-size 64 --load-size 64 --ngf 32 --ndf 32 --blocks 4 --epochs 9 --decay-epoch 4 --steps-per-epoch 200
