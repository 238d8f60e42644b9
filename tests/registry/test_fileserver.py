"""The test file server itself: ranges, faults, and the Hugging Face headers, checked with
httpx and the real huggingface_hub. No database."""

import hashlib
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.registry import fileserver

file_server = fileserver.file_server  # the fixture, for the tests here

SIZE = 300_000  # more than four 64 KiB pieces


@pytest.fixture
def blob(file_server):
    path = file_server.put("org/repo/model.gguf", size=SIZE)
    return path.read_bytes()


def test_get_and_head_send_the_whole_file_with_its_validators(file_server, blob):
    url = file_server.url_for("org/repo/model.gguf")

    head = httpx.head(url)
    get = httpx.get(url)

    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert get.content == blob
    for response in (head, get):
        assert response.headers["Content-Length"] == str(SIZE)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["ETag"].startswith('"')
        assert response.headers["Last-Modified"].endswith("GMT")
    assert file_server.requests == [("HEAD", "/org/repo/model.gguf", None), ("GET", "/org/repo/model.gguf", None)]
    # The server counts a chunk once its write returns, which can be after the client has it all.
    deadline = time.monotonic() + 5
    while file_server.bytes_sent < SIZE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert file_server.bytes_sent == SIZE


def test_range_requests_get_206_and_the_right_bytes(file_server, blob):
    url = file_server.url_for("org/repo/model.gguf")

    tail = httpx.get(url, headers={"Range": "bytes=100000-"})
    middle = httpx.get(url, headers={"Range": "bytes=10-19"})
    past_the_end = httpx.get(url, headers={"Range": f"bytes={SIZE}-"})

    assert tail.status_code == 206
    assert tail.content == blob[100000:]
    assert tail.headers["Content-Range"] == f"bytes 100000-{SIZE - 1}/{SIZE}"
    assert middle.status_code == 206
    assert middle.content == blob[10:20]
    assert middle.headers["Content-Length"] == "10"
    assert past_the_end.status_code == 416
    assert past_the_end.headers["Content-Range"] == f"bytes */{SIZE}"
    assert file_server.requests[0] == ("GET", "/org/repo/model.gguf", "bytes=100000-")
    assert file_server.bytes_sent == (SIZE - 100000) + 10


def test_if_range_with_a_stale_etag_sends_the_whole_file(file_server, blob):
    url = file_server.url_for("org/repo/model.gguf")
    etag = httpx.head(url).headers["ETag"]

    matching = httpx.get(url, headers={"Range": "bytes=5-", "If-Range": etag})
    stale = httpx.get(url, headers={"Range": "bytes=5-", "If-Range": '"something-else"'})

    assert matching.status_code == 206
    assert matching.content == blob[5:]
    assert stale.status_code == 200
    assert stale.content == blob


def test_cut_after_drops_the_connection_short_of_content_length(file_server, blob):
    url = file_server.url_for("org/repo/model.gguf")
    file_server.fail("/org/repo/model.gguf", cut_after=100_000, times=1)

    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", url) as response:
        assert response.headers["Content-Length"] == str(SIZE)
        for piece in response.iter_bytes():
            received += piece

    assert bytes(received) == blob[:100_000]
    assert file_server.bytes_sent == 100_000
    # The fault is used up: a resume from where it stopped now gets the rest.
    rest = httpx.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert bytes(received) + rest.content == blob


def test_status_faults_apply_for_their_times_then_clear(file_server, blob):
    url = file_server.url_for("org/repo/model.gguf")
    file_server.fail(url, status=500, times=2)
    file_server.fail("/org/repo/model.gguf", status=404, body="gone")

    first, second, third, fourth = (httpx.get(url) for _ in range(4))

    assert first.status_code == second.status_code == 500
    assert first.json() == {"error": "Internal Server Error"}
    assert third.status_code == fourth.status_code == 404
    assert third.text == "gone"
    file_server.clear_faults()
    assert httpx.get(url).content == blob
    assert httpx.get(file_server.url_for("org/repo/missing.gguf")).status_code == 404


def test_stall_and_throttle_slow_the_body_down(file_server, blob):
    url = file_server.url_for("org/repo/model.gguf")
    file_server.fail("*", stall_after=1000, stall_seconds=5, times=1)
    file_server.fail("*", throttle=1_000_000, times=1)

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=httpx.Timeout(5, read=0.5))
    started = time.monotonic()
    throttled = httpx.get(url)

    assert throttled.content == blob
    assert time.monotonic() - started > 0.25  # 300 kB at 1 MB/s


def test_nothing_listens_on_an_unused_url():
    with pytest.raises(httpx.ConnectError):
        httpx.get(fileserver.unused_url())


def test_huggingface_hub_reads_the_sha256_and_size(file_server, blob):
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    url = hf_hub_url("org/repo", "model.gguf", endpoint=file_server.url)
    metadata = get_hf_file_metadata(url)

    assert url == f"{file_server.url}/org/repo/resolve/main/model.gguf"
    assert metadata.etag == hashlib.sha256(blob).hexdigest()
    assert metadata.size == SIZE
    assert metadata.commit_hash == file_server.commit
    assert metadata.location == url
    assert file_server.requests == [("HEAD", "/org/repo/resolve/main/model.gguf", None)]

    # The whole hf_hub_download flow works too (HEAD, then a plain GET).
    path = hf_hub_download(
        "org/repo", "model.gguf", endpoint=file_server.url, cache_dir=file_server.root.parent / "hf-cache"
    )
    with open(path, "rb") as f:
        assert f.read() == blob


def test_huggingface_hub_reports_a_missing_file(file_server, blob):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError

    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url("org/repo", "nope.gguf", endpoint=file_server.url))
    with pytest.raises(RepositoryNotFoundError):
        get_hf_file_metadata(hf_hub_url("org/nope", "model.gguf", endpoint=file_server.url))


def test_hf_endpoint_is_read_when_huggingface_hub_is_imported(file_server, blob):
    script = (
        "from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url\n"
        "print(constants.ENDPOINT)\n"
        "print(get_hf_file_metadata(hf_hub_url('org/repo', 'model.gguf')).etag)\n"
    )
    env = {**os.environ, "HF_ENDPOINT": file_server.url}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout

    assert out.split() == [file_server.url, hashlib.sha256(blob).hexdigest()]
