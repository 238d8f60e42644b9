"""The registry trusts peers and redirects no more than it must: manifests are checked, the remote
key does not travel in clear text to strangers, redirects cannot reach the private network, and
local-path pulls read only the directories an admin allows."""

import http.server
import threading

import pytest

from registry import sources
from registry.sources import LanthornSource, PullError, Reporter

GOOD = "a" * 64


@pytest.fixture
def redirector():
    """An HTTP server whose every answer is a 302 to `target["url"]`."""
    target = {"url": ""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", target["url"])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/model.gguf", target
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("private", ["http://10.1.2.3/model.gguf", "http://169.254.169.254/latest/meta-data",
                                     "http://127.0.0.1:9/model.gguf", "http://[::1]:9/model.gguf"])
def test_a_redirect_to_a_private_address_is_refused(redirector, settings, tmp_path, private):
    url, target = redirector
    target["url"] = private
    settings.LANTHORN_PULL_ALLOW_PRIVATE = False
    with pytest.raises(PullError) as caught:
        sources.download(url, tmp_path / "partial", Reporter())
    assert caught.value.code == "forbidden"
    assert "private" in str(caught.value)


def test_a_redirect_to_a_private_address_is_followed_when_allowed(redirector, settings, tmp_path, file_server):
    url, target = redirector
    file_server.put("model.gguf", b"GGUF" + b"\0" * 60)
    target["url"] = file_server.url_for("model.gguf")
    settings.LANTHORN_PULL_ALLOW_PRIVATE = True
    sources.download(url, tmp_path / "partial", Reporter())
    assert (tmp_path / "partial").read_bytes().startswith(b"GGUF")


@pytest.mark.parametrize("manifest, problem", [
    ({"digest": "../../etc/passwd", "size": 0, "chunks": []}, "sha256"),
    ({"digest": GOOD, "size": 10, "chunks": [{"offset": 0, "length": 10, "sha256": "x"}]}, "sha256"),
    ({"digest": GOOD, "size": 10, "chunks": [{"offset": 0, "length": 4, "sha256": GOOD},
                                             {"offset": 5, "length": 5, "sha256": GOOD}]}, "tile"),
    ({"digest": GOOD, "size": 10, "chunks": [{"offset": 0, "length": 4, "sha256": GOOD}]}, "cover"),
    ({"digest": GOOD, "size": 4, "chunks": [{"offset": 0, "length": 4, "sha256": GOOD},
                                            {"offset": 4, "length": 0, "sha256": GOOD}]}, "tile"),
    ({"digest": GOOD}, "size"),
])
def test_a_bad_manifest_from_a_peer_is_refused(manifest, problem):
    with pytest.raises(PullError) as caught:
        sources._checked_manifest(manifest)
    assert caught.value.code == "bad_manifest"
    assert problem in str(caught.value)


def test_the_remote_key_is_not_sent_in_clear_text_to_an_unlisted_peer(settings):
    settings.LANTHORN_PULL_PEERS = []
    source = LanthornSource(label="x", name_hint="m", base_url="http://peer.example:8000", model="m")
    with pytest.raises(PullError) as caught:
        source.fetch(Reporter(), finish=None, remote_key="lt-secret")
    assert caught.value.code == "forbidden"
    assert "clear text" in str(caught.value)


@pytest.mark.parametrize("base_url, peers", [("https://peer.example", []),
                                             ("http://peer.example:8000", ["peer.example:8000"]),
                                             ("http://127.0.0.1:8000", [])])
def test_the_remote_key_may_go_over_https_to_a_listed_peer_or_to_loopback(settings, base_url, peers):
    settings.LANTHORN_PULL_PEERS = peers
    assert sources._may_send_key(base_url)


def test_a_local_pull_outside_the_allowed_directories_is_refused(settings, tmp_path):
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "ok.gguf").write_bytes(b"GGUF")
    (tmp_path / "secret.gguf").write_bytes(b"GGUF")
    settings.LANTHORN_PULL_LOCAL_DIRS = [str(tmp_path / "allowed")]
    assert sources.parse(str(tmp_path / "allowed" / "ok.gguf")).path.name == "ok.gguf"
    for outside in (tmp_path / "secret.gguf", tmp_path / "allowed" / ".." / "secret.gguf"):
        with pytest.raises(PullError) as caught:
            sources.parse(str(outside))
        assert caught.value.code == "forbidden"
