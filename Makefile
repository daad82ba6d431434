# Two entry points: `make demo` and `make test`. Both create .venv (Python 3.10) on first use.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench clean

$(PYTHON):
	@py=$$(scripts/find-python310) && echo "creating $(VENV) with $$py" && $$py -m venv $(VENV)

# requirements.lock is the full pinned set; --no-deps keeps pip from re-resolving (torchattacks pins an old requests).
$(STAMP): $(PYTHON) requirements.lock pyproject.toml
	$(PYTHON) -m pip install -q --upgrade "pip>=24"
	$(PYTHON) -m pip install -q --no-deps -r requirements.lock
	$(PYTHON) -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tgo demo

test: $(STAMP)
	$(PYTHON) -m pytest -q

bench: $(STAMP)
	for b in bench/*.py; do $(PYTHON) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs
