"""Other users of the machine: Lanthorn's files are owner-only from the start, and a Redis with a
password is used through REDIS_URL, never shown in clear."""

import os
import stat
import subprocess
import sys
import time

from lanthorn import processes, redis_server


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_home_its_database_and_secret_key_are_owner_only(tmp_path):
    home = tmp_path / "new-home"
    env = {**os.environ, "LANTHORN_HOME": str(home), "DJANGO_SETTINGS_MODULE": "lanthorn.settings"}
    for name in ("DATABASE_URL", "SECRET_KEY"):
        env.pop(name, None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=processes.BASE_DIR,
                   env=env, check=True, timeout=120, preexec_fn=lambda: os.umask(0o022))
    assert mode(home) == 0o700
    assert mode(home / "imports") == 0o700  # where API and console pulls of local files may read
    assert mode(home / "secret_key") == 0o600
    assert mode(home / "lanthorn.sqlite3") == 0o600


def test_redis_with_a_password_is_used_and_the_password_never_printed(tmp_path):
    port = redis_server.free_port()
    proc = processes.spawn([redis_server.redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--requirepass", "s3cret-pass"], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://:s3cret-pass@127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not redis_server.ping(url):
            assert time.monotonic() < deadline, "the Redis with a password did not answer"
            time.sleep(0.05)
        assert not redis_server.ping(f"redis://127.0.0.1:{port}/0")
        assert "s3cret-pass" not in redis_server.masked(url)
        for other in (f"redis://user:s3cret-pass@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0?password=s3cret-pass",
                      f"redis://s3cret-pass@127.0.0.1:{port}/0"):
            assert "s3cret-pass" not in redis_server.masked(other)
    finally:
        processes.stop([proc])
