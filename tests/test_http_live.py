"""A real `recsys serve` (uvicorn) on 127.0.0.1: hot reload under load, training jobs, 401/409/413,
graceful shutdown, several workers, and a bounded schemathesis run against the live schema."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_http import KEY, build_home, some_item_and_user

from recsys.models.registry import Registry

# uvicorn re-raises the signal it shut down for once the shutdown is complete.
CLEAN_EXIT = (0, -signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@contextmanager
def serve(home: Path, *args: str, **env: str) -> Iterator[Server]:
    port = free_port()
    log = home.parent / f"server-{port}.log"
    environ = {**os.environ, "RECSYS_SERVER_RELOAD_CHECK_SECONDS": "0.2", **env}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recsys", "--home", str(home), "serve", "--port", str(port), *args],
            stdout=out, stderr=subprocess.STDOUT, env=environ, text=True,
        )  # fmt: skip
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(server.url + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return build_home(tmp_path)


def wait_job(url: str, job_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/training/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(job)


class Hammer:
    """Clients firing requests in a loop, each on its own keep-alive connection."""

    def __init__(self, url: str, bodies: list[tuple[str, dict[str, Any]]], clients: int = 2):
        self.url, self.bodies = url, bodies
        self.stop = threading.Event()
        self.results: list[list[tuple[int, str | None]]] = [[] for _ in range(clients)]
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, index: int) -> None:
        seen = self.results[index]
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                for path, body in self.bodies:
                    try:
                        r = client.post(path, json=body)
                        seen.append((r.status_code, r.headers.get("X-Model-Version")))
                    except httpx.HTTPError as exc:
                        seen.append((0, repr(exc)))

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def wait_for(self, version: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r and r[-1][1] == version for r in self.results):
                return
            time.sleep(0.05)
        raise AssertionError(f"clients still on {[r[-1] for r in self.results if r]}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_hot_reload_under_load_without_a_failed_request(home, workers):
    item, user = some_item_and_user(home)
    old = Registry(home / "models").current("mf")
    bodies = [
        ("/matrix_factor/similar", {"item_id": item, "n": 10}),
        ("/matrix_factor/user", {"user_id": user, "n": 10}),
    ]
    with serve(home, "--workers", workers) as server:
        with Hammer(server.url, bodies, clients=3) as hammer:
            time.sleep(0.5)
            job = httpx.post(
                f"{server.url}/training", json={"model_type": "mf", "force_retrain": True}
            )
            assert job.status_code == 202, job.text
            done = wait_job(server.url, job.json()["id"])
            assert done["state"] == "succeeded" and done["version"] != old, done
            hammer.wait_for(done["version"])
            time.sleep(0.3)
        # Every worker answers with the new version (fresh connections land on any worker).
        for _ in range(20):
            r = httpx.post(f"{server.url}/matrix_factor/similar", json={"item_id": item})
            assert r.headers["X-Model-Version"] == done["version"]
    for results in hammer.results:
        assert results and all(status == 200 for status, _ in results), {s for s, _ in results}
        versions = [v for _, v in results]
        assert set(versions) == {old, done["version"]}
        switch = versions.index(done["version"])  # one clean switch per connection, no flapping
        assert versions[:switch] == [old] * switch and set(versions[switch:]) == {done["version"]}


def test_training_409_and_401_on_a_real_server(home):
    with serve(home, RECSYS_API_KEY=KEY) as server:
        url = server.url
        body = {"model_type": "mf", "force_retrain": True}
        assert httpx.post(f"{url}/training", json=body).status_code == 401
        assert (
            httpx.post(f"{url}/training", json=body, headers={"X-API-Key": "nope"}).status_code
            == 401
        )
        first = httpx.post(f"{url}/training", json=body, headers={"X-API-Key": KEY})
        assert first.status_code == 202, first.text
        # The child holds the lock from the moment it is spawned (it is still importing numpy).
        second = httpx.post(f"{url}/training", json=body, headers={"X-API-Key": KEY})
        assert second.status_code == 409, second.text
        assert first.json()["id"] in second.json()["error"]["message"]
        done = wait_job(url, first.json()["id"], headers={"X-API-Key": KEY})
        assert done["state"] == "succeeded"
        third = httpx.post(f"{url}/training", json=body, headers={"X-API-Key": KEY})
        assert third.status_code == 202
        wait_job(url, third.json()["id"], headers={"X-API-Key": KEY})


def test_413_for_declared_and_streamed_bodies(home):
    with serve(home, RECSYS_SERVER_MAX_BODY_BYTES="2048") as server:
        big = json.dumps({"user_id": "u", "item_ids": ["x" * 100] * 40}).encode()
        declared = httpx.post(f"{server.url}/matrix_factor/user", content=big,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        streamed = httpx.post(f"{server.url}/matrix_factor/user", content=iter([big[:1000], big[1000:]]),
                              headers={"Content-Type": "application/json"})  # fmt: skip
        for r in (declared, streamed):
            assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert (
            httpx.post(f"{server.url}/matrix_factor/user", json={"user_id": "u"}).status_code == 200
        )


def test_sigterm_lets_the_request_in_flight_finish(home):
    item, _ = some_item_and_user(home)
    body = json.dumps({"item_id": item, "n": 3}).encode()
    with serve(home) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as conn:
            head = (
                f"POST /matrix_factor/similar HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            conn.sendall(head.encode() + body[:5])  # the request is in flight: half a body
            time.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.proc.poll() is None  # still waiting for our request
            with pytest.raises(httpx.TransportError):  # but no longer accepting new ones
                httpx.get(server.url + "/health/live", timeout=2)
            conn.sendall(body[5:])
            conn.settimeout(10)
            response = b""
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["query"] == item
        assert server.proc.wait(15) in CLEAN_EXIT


def test_shutdown_leaves_a_running_training_to_publish(home):
    registry = Registry(home / "models")
    old = registry.current("mf")
    with serve(home) as server:
        job = httpx.post(
            f"{server.url}/training", json={"model_type": "mf", "force_retrain": True}
        ).json()
        assert server.stop() in CLEAN_EXIT  # the server does not wait for the job...
    record = home / "jobs" / f"{job['id']}.json"
    deadline = time.monotonic() + 120
    while json.loads(record.read_text())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    done = json.loads(record.read_text())  # ...which finishes and publishes on its own
    assert done["state"] == "succeeded", done
    assert registry.current("mf") == done["version"] != old
    registry.open("mf")  # every artifact passes its checksum: nothing half-published
    with serve(home) as server:  # a restarted server knows the job
        assert httpx.get(f"{server.url}/training/{job['id']}").json()["state"] == "succeeded"


# Schema-valid data is never a 400: an unknown `category` is 200 with no items on every route.
# 404 (unknown item/user) and 409 (not trained) depend on the data, not on the request's shape.
SCHEMATHESIS_TOML = """
[[operations]]
include-path-regex = "^/(matrix_factor|recommendations|search)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409"]

# Writes: any list of objects is schema-valid (each bad event is reported in a 200), but a
# batch of large events, valid or one too many, can pass server.max_body_bytes first (413).
[[operations]]
include-path-regex = "^/(feedback|items)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "413"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "413"]
"""


def run_schemathesis(url: str, workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
            f"{url}/schema/openapi.json", "--checks", "all", "--seed", "1",
            "--generation-database", "none", "--phases", "examples,coverage,fuzzing",
            "--workers", "2", "--no-color", *extra,
        ],
        capture_output=True, text=True, timeout=600, cwd=workdir,
    )  # fmt: skip


def test_schemathesis_finds_no_server_error_or_schema_violation(home, tmp_path):
    """Both model kinds' training locks are held, so generated valid POST /training bodies are
    answered 409 (documented) instead of starting real training runs."""
    jobs = home / "jobs"
    jobs.mkdir(exist_ok=True)
    with ExitStack() as stack:
        for kind in ("als", "ss"):
            lock = stack.enter_context(open(jobs / f"{kind}.lock", "w"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        server = stack.enter_context(serve(home, RECSYS_API_KEY=KEY))
        with_key = run_schemathesis(
            server.url, tmp_path, "--max-examples", "50", "--header", f"X-API-Key: {KEY}"
        )
        # Without the key, /training must answer 401 whatever is sent ("ignored_auth" check).
        without_key = run_schemathesis(server.url, tmp_path, "--max-examples", "10")
        log = server.log.read_text()
    for proc in (with_key, without_key):
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]
    assert " 500 " not in log and "Traceback" not in log


def scrape(url: str) -> tuple[int, dict[str, float]]:
    """(worker pid that answered, request counts by route/method/status label text)."""
    text = httpx.get(url + "/metrics", headers={"Connection": "close"}).text
    pid = int(float(re.search(r"^recsys_worker_pid (\S+)$", text, re.M).group(1)))
    counts = {
        labels: float(value)
        for labels, value in re.findall(r"^recsys_http_requests_total\{(.*)\} (\S+)$", text, re.M)
    }
    return pid, counts


def test_metrics_count_every_workers_requests(home):
    """With 2 workers a scrape reaches one of them, yet counts the requests both answered."""
    item, _ = some_item_and_user(home)
    route = 'method="POST",route="/matrix_factor/similar",status="200"'
    with serve(home, "--workers", "2") as server:
        pids: set[int] = set()
        for _ in range(40):  # fresh connections spread over the workers
            r = httpx.post(server.url + "/matrix_factor/similar", json={"item_id": item},
                           headers={"Connection": "close"})  # fmt: skip
            assert r.status_code == 200
        seen = []
        for _ in range(30):
            pid, counts = scrape(server.url)
            pids.add(pid)
            seen.append(counts.get(route))
            if len(pids) == 2:
                break
        assert len(pids) == 2, "every scrape reached the same worker"
        assert all(n == 40 for n in seen), seen  # whichever worker answered the scrape


def test_feedback_reaches_the_next_answer_on_a_real_server(home):
    """Write, then ask: the answer right after POST /feedback returns reflects the event, for a
    user the model knows and one only the store knows; readers under way see no failure."""
    item, user = some_item_and_user(home)
    key = {"X-API-Key": KEY}
    with serve(home, RECSYS_API_KEY=KEY) as server, httpx.Client(base_url=server.url) as client:

        def picks(path: str, who: str) -> list[str]:
            r = client.post(path, json={"user_id": who, "n": 5})
            assert r.status_code == 200, r.text
            return [line["item_id"] for line in r.json()["items"]]

        bodies = [("/matrix_factor/user", {"user_id": user, "n": 10})]
        with Hammer(server.url, bodies) as hammer:
            deadline = time.monotonic() + 30
            while not all(hammer.results) and time.monotonic() < deadline:
                time.sleep(0.05)  # every reader is under way before the first write
            for path in ("/matrix_factor/user", "/recommendations/user"):
                top = picks(path, user)[0]
                event = {"events": [{"user_id": user, "item_id": top}]}
                assert client.post("/feedback", json=event).status_code == 401
                r = client.post("/feedback", json=event, headers=key)
                assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
                assert top not in picks(path, user)  # the very next request
            bought = picks("/matrix_factor/user", "live-newcomer")[:2]
            events = [{"user_id": "live-newcomer", "item_id": i} for i in bought]
            client.post("/feedback", json={"events": events}, headers=key)
            r = client.post("/matrix_factor/user", json={"user_id": "live-newcomer", "n": 5})
            assert "2 stored ratings" in r.json()["message"]
            assert not set(bought) & {line["item_id"] for line in r.json()["items"]}
        statuses = [status for results in hammer.results for status, _ in results]
        assert statuses and set(statuses) == {200}
        assert item  # the fixture's store has ratings
