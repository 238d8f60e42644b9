#!/usr/bin/env bash
# Runs examples/Stream.java against LANTHORN_ENDPOINT with LANTHORN_API_KEY.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build/classes build/examples
javac --release 17 -d build/classes $(find src -name '*.java')
javac --release 17 -cp build/classes -d build/examples examples/Stream.java
java -cp build/classes:build/examples Stream
