"""Slow and numerous clients on a real uvicorn: header and body deadlines close trickling
connections, a connection cap answers 503, a cut-short body is a 499 (cases
slow-clients-no-timeout-emfile, client-abort-counted-as-500)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from test_http_live import serve

from recsys.http.protocol import connection_cap


@pytest.fixture
def home(tmp_path):
    from test_http import build_home

    return build_home(tmp_path, mf=False)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sent before it closed the connection (raises on the 30 s
    safety timeout, i.e. when the server never closes it)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_trickling_headers_and_bodies_are_cut_off_and_counted_as_499(home):
    limits = {"RECSYS_SERVER_HEADER_TIMEOUT_SECONDS": "0.5",
              "RECSYS_SERVER_BODY_TIMEOUT_SECONDS": "0.5"}  # fmt: skip
    with serve(home, **limits) as server:
        slow_headers = connect(server.url)
        slow_headers.sendall(b"POST /search HTTP/1.1\r\nhost: x\r\n")  # ...and nothing more
        slow_body = connect(server.url)
        slow_body.sendall(b"POST /search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                          b"content-length: 100\r\n\r\n{\"query\":")  # fmt: skip
        assert closed_by_server(slow_headers) == b""
        assert closed_by_server(slow_body) == b""
        # a client that sends on time is served as ever, on the same server
        assert httpx.post(server.url + "/search", json={"query": "x", "mode": "keyword"}).is_success
        metrics = httpx.get(server.url + "/metrics").text
        log = server.log.read_text()
    assert requests_counted(metrics) == {
        ("/search", "POST", "499"): 1,
        ("/search", "POST", "200"): 1,
    }
    assert "Traceback" not in log and " 500 " not in log


def test_connections_past_the_cap_get_503(home):
    with serve(home, RECSYS_SERVER_MAX_CONNECTIONS="2") as server:
        held = [connect(server.url) for _ in range(2)]
        time.sleep(0.2)  # both accepted by the server
        extra = connect(server.url)
        answer = closed_by_server(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b'"code":"unavailable"' in answer
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(server.url + "/health/live").is_success


def test_the_cap_stays_below_the_open_file_limit():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10) <= 10
    if soft != resource.RLIM_INFINITY:
        assert connection_cap(10**9) <= soft - 64


def requests_counted(metrics: str) -> dict[tuple[str, str, str], float]:
    """(route, method, status) -> requests, read with prometheus_client's own parser (label
    order differs between its single- and multiprocess exposition)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "recsys_http_requests"
        for s in family.samples
        if s.name == "recsys_http_requests_total" and s.labels["route"] != "/health/ready"
    }
