# Lanthorn: `make run` sets up and runs everything; `make test` runs the test suite.
VENV := .venv
STAMP := $(VENV)/.bootstrapped

.PHONY: run test setup bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml sdk/python/pyproject.toml scripts/bootstrap.sh scripts/install-llama-cpp.sh
	scripts/bootstrap.sh
	touch $@

run: setup
	$(VENV)/bin/lanthorn run

test: setup
	$(VENV)/bin/python -m pytest

bench: setup
	$(VENV)/bin/python bench/stream_overhead.py
	$(VENV)/bin/python bench/delta_pull.py
	$(VENV)/bin/python bench/audit_export.py
	$(VENV)/bin/python bench/audit_request.py

clean:
	rm -rf $(VENV)
