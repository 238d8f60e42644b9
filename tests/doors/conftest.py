"""The doors' tests: the real stack, plus a `lanthorn grpc` server on it for the gRPC tests."""

import socket
import time

import grpc
import pytest

from lanthorn import processes, redis_server


@pytest.fixture(scope="session")
def grpc_target(stack):
    """`host:port` of a `lanthorn grpc` server on the stack's database and Redis."""
    port = redis_server.free_port()
    proc = processes.start_grpc(host="127.0.0.1", port=port, env=stack.env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"lanthorn grpc exited with status {proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("lanthorn grpc did not start")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        processes.stop([proc])


@pytest.fixture
def grpc_channel(grpc_target):
    with grpc.insecure_channel(grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield channel
