#!/usr/bin/env bash
# Builds the SDK and runs its tests with the JDK alone (javac, java; no Maven downloads).
# Live tests need LANTHORN_ENDPOINT and LANTHORN_API_KEY; without them they are skipped.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf build && mkdir -p build/classes build/test
javac --release 17 -d build/classes $(find src -name '*.java')
jar --create --file build/lanthorn-sdk.jar -C build/classes .
javac --release 17 -cp build/classes -d build/test $(find test -name '*.java')
java -cp build/classes:build/test dev.lanthorn.sdk.LLMClientTest
