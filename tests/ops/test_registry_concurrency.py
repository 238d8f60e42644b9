"""Concurrent pulls, activations and removals of one model, on PostgreSQL where the registry's
row locks are real (SQLite serialises every write, so there is nothing to race)."""

import random
import threading

import pytest
from django.db import connection

from registry import blobstore, services
from registry.models import Model, ModelVersion, Pull
from tests.registry.ggufs import write_tiny_gguf

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="row locks are real only on PostgreSQL: .ci/run runs this with DATABASE_URL=postgres://…"),
]

THREADS, ROUNDS = 6, 20


def test_it_keeps_one_model_whole_under_concurrent_pulls_activations_and_removals(home):
    files = [write_tiny_gguf(home / f"v{i}.gguf", size_mb=0.2, seed=i) for i in range(THREADS * ROUNDS + 1)]
    services.import_file(name="hammer", path=files.pop())
    unexpected, pulled = [], []
    start = threading.Barrier(THREADS)

    def work(index: int) -> None:
        rng = random.Random(index)
        try:
            start.wait(timeout=30)
            for round in range(ROUNDS):
                try:
                    action = rng.choice(["pull", "activate", "remove"])
                    numbers = list(ModelVersion.objects.filter(model__name="hammer").values_list("number", flat=True))
                    if action == "pull":
                        pulled.append(services.import_file(name="hammer", path=files[index * ROUNDS + round]).number)
                    elif action == "activate" and numbers:
                        services.rollback(name="hammer", number=rng.choice(numbers))
                    elif numbers:
                        services.remove(name="hammer", number=rng.choice(numbers))
                except services.RegistryError:
                    pass  # refused on purpose: the active version, one removed meanwhile, ...
        except Exception as exc:
            unexpected.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung (a lock never released?)"

    assert not unexpected, unexpected
    model = Model.objects.select_related("active_version").get(name="hammer")
    assert model.active_version is not None and model.active_version.path.is_file()
    assert pulled, "no pull went through"
    assert not Pull.objects.exclude(status__in=[Pull.DONE, Pull.FAILED]).exists()
    for version in model.versions.all():  # garbage collection spared every file a version uses
        assert blobstore.has_blob(version.digest), version.label
