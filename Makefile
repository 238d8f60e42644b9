# Lanthorn: `make run` sets up and runs everything; `make test` runs the test suite.
VENV := .venv
STAMP := $(VENV)/.bootstrapped

.PHONY: run test setup bench bench-peer clean

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
	$(VENV)/bin/python bench/concurrency.py
	$(VENV)/bin/python bench/determinism.py
	$(VENV)/bin/python bench/prefix.py
	$(VENV)/bin/python bench/cache.py
	$(VENV)/bin/python bench/memory.py

# The peer server for bench/concurrency.py (llama-cpp-python[server]'s packages), kept out of the venv.
bench-peer: setup
	$(VENV)/bin/pip install --quiet --target var/bench-peer fastapi sse-starlette starlette-context pydantic-settings

clean:
	rm -rf $(VENV)
