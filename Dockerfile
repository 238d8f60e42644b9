# Lanthorn's image for compose.yaml: the same install steps as `make run` (scripts/bootstrap.sh).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt pyproject.toml ./
COPY scripts ./scripts
# Build llama-cpp-python for the CPU the image is built on (see scripts/install-llama-cpp.sh).
RUN python -m venv .venv && scripts/install-llama-cpp.sh .venv \
    && .venv/bin/pip install --no-cache-dir -r requirements.txt
COPY . .
RUN .venv/bin/pip install --no-cache-dir --no-deps -e . && .venv/bin/python -m inference.grpc_stubs \
    && .venv/bin/python -m inference.head
ENV PATH=/app/.venv/bin:$PATH LANTHORN_HOME=/data
VOLUME /data
EXPOSE 8000 50051
