"""A second Lanthorn server with its own home and database, set up the way a user sets one
up (`lanthorn setup`, `lanthorn import`, `lanthorn keys create`), for tests and the
benchmark of pulls from one Lanthorn to another (`lanthorn://HOST:PORT/MODEL[:VERSION]`).
It serves the registry endpoint; it needs no worker.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lanthorn import processes, redis_server
from tests.registry.gguf_edit import set_metadata_string

FIXED_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

LANTHORN = str(Path(sys.executable).with_name("lanthorn"))


@dataclass
class Peer:
    home: Path
    url: str
    key: str
    env: dict
    server: subprocess.Popen

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def lanthorn(self, *args: str) -> str:
        result = subprocess.run([LANTHORN, *args], env=self.env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"lanthorn {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        processes.stop([self.server])


def with_fixed_template(src: Path, dst: Path) -> Path:
    """The default model re-released with only its metadata changed: a chat template added."""
    set_metadata_string(src, dst, "tokenizer.chat_template", FIXED_TEMPLATE)
    return dst


def start_peer(home: Path, *, redis_url: str) -> Peer:
    """Sets up a Lanthorn in `home` with the default model as version 1 and the same file with a
    fixed chat template as version 2, and starts its server."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LANTHORN_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'peer.sqlite3'}",
           "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    peer = Peer(home=home, url="", key="", env=env, server=None)
    peer.lanthorn("setup")
    blob = next(home.glob("blobs/sha256-a5fd3b62*[0-9a-f]"))
    fixed = with_fixed_template(blob, home / "gemma3-270m-fixed.gguf")
    peer.lanthorn("import", "gemma3-270m", str(fixed))
    fixed.unlink()
    peer.key = peer.lanthorn("keys", "create", "--name", "peer").strip().splitlines()[-1]
    port = redis_server.free_port()
    peer.url = f"http://127.0.0.1:{port}"
    peer.server = processes.start_server(host="127.0.0.1", port=port, env=env)
    processes.wait_healthy(peer.url, [peer.server], timeout=60, need_worker=False)
    return peer
