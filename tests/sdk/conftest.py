"""The SDKs against the real stack: the environment their own test suites and examples read."""

from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[2] / "sdk"


@pytest.fixture
def live_env(stack, default_model, member_key) -> dict:
    return {"LANTHORN_ENDPOINT": stack.url, "LANTHORN_API_KEY": member_key.raw, "LANTHORN_MODEL": default_model.name}
