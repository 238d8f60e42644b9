"""The curated catalog (registry/catalog.json): models Lanthorn knows by name."""

import json
from functools import cache
from pathlib import Path

CATALOG_FILE = Path(__file__).with_name("catalog.json")


@cache
def entries() -> list[dict]:
    return json.loads(CATALOG_FILE.read_text())["models"]


def find(name: str) -> dict | None:
    return next((e for e in entries() if e["name"] == name), None)


def find_by_source(source: str) -> dict | None:
    return next((e for e in entries() if e["source"] == source), None)
