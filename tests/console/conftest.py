import pytest

from console import views


@pytest.fixture(autouse=True)
def no_redis(monkeypatch):
    """The console tests don't need Redis: pretend two workers are alive unless a test says otherwise."""
    monkeypatch.setattr(views, "live_workers", lambda: ["w1", "w2"])
