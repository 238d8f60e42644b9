#!/usr/bin/env bash
# Creates .venv with everything Lanthorn needs. Idempotent; `make run` and `make test` call it.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "Please install: $* (Debian/Ubuntu: sudo apt-get install $*)" >&2
    exit 1
  fi
}

python=$(command -v python3.11 || command -v python3 || true)
[ -n "$python" ] || apt_install python3 python3-venv
python=$(command -v python3.11 || command -v python3)
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Lanthorn needs Python 3.11 or newer; $python is older" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; "$python" -m venv .venv; }
fi
command -v g++ >/dev/null && command -v make >/dev/null || apt_install build-essential

.venv/bin/python -m pip install -q --upgrade pip
scripts/install-llama-cpp.sh .venv
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e . -e sdk/python
# The gRPC stubs of proto/lanthorn/v1/inference.proto, into build/grpc/ (not committed).
.venv/bin/python -m inference.grpc_stubs
# Lanthorn's kernels for the output layer and the layers' matmuls (inference/native/), into
# build/kernels/ (not committed). Without them, llama.cpp computes everything, more slowly.
.venv/bin/python -m inference.kernels || echo "Lanthorn's kernels did not build; llama.cpp will compute everything" >&2

# Test toolchains: Debian's Chromium for the browser tests (driven by Playwright, no browser
# download), Go and a JDK for the Go and Java SDKs. Missing ones are installed when we can
# (root with apt-get); otherwise their tests are skipped, saying so.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v go >/dev/null || missing+=(golang-go)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_install "${missing[@]}"
  else
    echo "Not installed: ${missing[*]} (Debian: sudo apt-get install ${missing[*]}); their tests will be skipped" >&2
  fi
fi
