"""Finding a Redis to talk to, or starting a private one (for `make run` and the tests)."""

import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis


def default_url(home: Path) -> str:
    """Redis on 127.0.0.1:6379, in a database (1-15) chosen by LANTHORN_HOME: two installations on
    one machine sharing that Redis keep their queues, workers and streams apart."""
    db = 1 + int(hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest(), 16) % 15
    return f"redis://127.0.0.1:6379/{db}"


def masked(url: str) -> str:
    """The URL with its password hidden, for messages: `redis://:***@host:6379/0`,
    `redis://user:***@…`, `?password=***`; a lone user part is hidden too (`redis://***@…`):
    a password written there by mistake must not be printed either."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    if query:
        query = "&".join("password=***" if item.lower().startswith("password=") else item
                         for item in query.split("&"))
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """The path of redis-server, installing Debian's package when we can (root with apt-get)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("redis-server is missing: installing Debian's package redis-server", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True, env=env)
        found = shutil.which("redis-server")
        if found:
            return found
    raise RuntimeError(
        "redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server) "
        "or point REDIS_URL at a running Redis."
    )


def start_private(directory: Path, *, port: int | None = None,
                  password: str | None = None) -> tuple[subprocess.Popen, str]:
    """Starts a redis-server that keeps nothing on disk, on `port` or a free loopback port (asking
    for `password` if given: the URL returned carries it)."""
    binary = redis_server_binary()
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    from lanthorn.processes import spawn

    auth = ["--requirepass", password] if password else []
    proc = spawn([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--dir", str(directory), "--loglevel", "warning", *auth], stdout=subprocess.DEVNULL)
    url = f"redis://{f':{quote(password, safe=str())}@' if password else ''}127.0.0.1:{port}/0"
    for _ in range(100):
        if ping(url):
            return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")
