"""Load-test `recsys serve` on 127.0.0.1 with reference-scale models; print req/s, p50/p99, failures
and the server's resident memory.

    python benchmarks/bench_http.py [--home DIR] [--data DIR] [--duration S] [--clients 1,16,64]
                                    [--search-clients 1,8,16,64]
                                    [--search-mode semantic|keyword|hybrid] [--workers N]
                                    [--loadgen auto|wrk|python] [--skip-training] [--prepare-only]

--home reuses (or fills) a data home with the reference sample (2M ratings, 1.7M users, 90K items,
94K products) and both models; the first run takes several minutes (sample, ingest, ALS, and
embedding 94K titles). Load comes from a separate process: wrk when installed (Debian package
`wrk`), else benchmarks/loadgen.py (an asyncio HTTP/1.1 keep-alive client).

Measured in the same run: a bare Litestar endpoint returning a fixed 10-item JSON body (the
floor of what any Litestar handler on this machine can do), then similar/user/search at each
client count, then the same load while a forced `als` training job runs and publishes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
RECSYS = [sys.executable, "-m", "recsys"]
REFERENCE = {"users": 1_700_000, "items": 90_000, "ratings": 2_000_000, "products": 94_000}


# ---- the bare floor ------------------------------------------------------------------------
def bare_app():  # type: ignore[no-untyped-def]
    """uvicorn factory `bench_http:bare_app`: one POST route, a fixed 10-item body."""
    from litestar import Litestar, post

    from recsys.schemas import Recommendations, ScoredItem

    items = [
        ScoredItem(
            item_id=f"B0{i:08d}",
            score=1.0 / (i + 1),
            title=f"Product number {i} with a title",
            image_url=f"https://example.com/img/B0{i:08d}.jpg",
            price=9.99 + i,
            category="Books",
        )  # fmt: skip
        for i in range(10)
    ]
    fixed = Recommendations(
        kind="similar", query="B000000000", strategy="als", model_version="x", items=items
    )

    @post("/bare", status_code=200, sync_to_thread=False)
    def bare() -> Recommendations:
        return fixed

    # `from __future__ import annotations` leaves the return type as a string: name it for Litestar.
    return Litestar(
        [bare], logging_config=None, signature_namespace={"Recommendations": Recommendations}
    )


# ---- preparation ---------------------------------------------------------------------------
def run(args: list[str]) -> str:
    proc = subprocess.run(RECSYS + args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"recsys {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def prepare(home: Path, data: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    status = json.loads(run(["--home", str(home), "status", "--json"]))
    if status["store"]["ratings"] == 0:
        reviews, meta = data / "reviews.jsonl.gz", data / "meta.jsonl.gz"
        if not reviews.exists():
            print(f"generating the reference sample in {data} ...", flush=True)
            opts = [f"--{k}={v}" for k, v in REFERENCE.items()]
            run(["sample", str(data), *opts, "--gzip"])
        print("ingesting ...", flush=True)
        run(["--home", str(home), "ingest", str(meta), str(reviews), "-q"])
    for kind in ("als", "ss"):
        if not (home / "models" / kind / "current").exists():
            print(f"training {kind} ...", flush=True)
            started = time.perf_counter()
            run(["--home", str(home), "train", kind])
            print(f"  {kind} trained in {time.perf_counter() - started:.0f} s", flush=True)


def request_bodies(
    home: Path, n: int = 500, search_mode: str | None = None
) -> dict[str, list[dict]]:
    """Real ids from the store: items and users the model knows (users with >= 2 ratings)."""
    rng = random.Random(1)
    with sqlite3.connect(home / "recsys.db") as db:
        items = [
            r[0] for r in db.execute("select distinct item_id from user_item_rating limit 20000")
        ]
        users = [
            r[0]
            for r in db.execute(
                "select user_id from user_item_rating group by user_id having count(*) >= 2 "
                "limit 20000"
            )
        ]
    queries = [
        q["query"] for q in json.loads((HERE / "search_queries.json").read_text())["queries"]
    ]
    queries += ["wireless earbuds", "gift for a runner", "kitchen knife set", "vitamin c gummies"]
    return {
        "/matrix_factor/similar": [
            {"item_id": i, "n": 10} for i in rng.sample(items, min(n, len(items)))
        ],
        "/matrix_factor/user": [
            {"user_id": u, "n": 10} for u in rng.sample(users, min(n, len(users)))
        ],
        "/search": [
            {"query": q, "top_k": 10, **({"mode": search_mode} if search_mode else {})}
            for q in queries
        ],
        "/bare": [{"item_id": i, "n": 10} for i in rng.sample(items, min(50, len(items)))],
    }


# ---- servers -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str

    def rss_bytes(self) -> int:
        """Resident memory of the server and its worker processes."""
        pids = [self.proc.pid, *_children(self.proc.pid)]
        total = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            total += int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def start(cmd: list[str], port: int, ready_path: str, log: Path, env: dict | None = None) -> Server:
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:  # 405: the bare app's POST-only route answers, so it is up
            if httpx.get(url + ready_path, timeout=2).status_code in (200, 405):
                return Server(proc, url)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready")


# ---- load ----------------------------------------------------------------------------------
@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int


WRK_SCRIPT = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, bodies[(i %% #bodies) + 1])
end
"""


def _wrk(url: str, path: str, bodies: list[dict], clients: int, seconds: float) -> Result:
    lua = ", ".join(json.dumps(json.dumps(b)) for b in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % (lua, path))
    try:
        out = subprocess.run(
            ["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{max(1, round(seconds))}s",
             "--latency", "-s", f.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in errors.groups()) if errors else 0
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return Result(rps, ms("50%"), ms("99%"), requests, failed)


def _python(url: str, path: str, bodies: list[dict], clients: int, seconds: float) -> Result:
    proc = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), url + path, "--clients", str(clients),
         "--seconds", str(seconds)],
        input=json.dumps(bodies), capture_output=True, text=True, check=True,
    )  # fmt: skip
    r = json.loads(proc.stdout)
    return Result(r["rps"], r["p50_ms"], r["p99_ms"], r["requests"], r["failed"])


def load(
    kind: str, url: str, path: str, bodies: list[dict], clients: int, seconds: float
) -> Result:
    return (_wrk if kind == "wrk" else _python)(url, path, bodies, clients, seconds)


def row(label: str, clients: int, r: Result) -> str:
    return (
        f"{label:<24} {clients:>4} {r.rps:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
        f"{r.requests:>9,} {r.failed:>6}"
    )


HEADER = f"{'endpoint':<24} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'failed':>6}"


# ---- main ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="data home to reuse or fill")
    parser.add_argument("--data", type=Path, help="reference sample folder to reuse or fill")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--search-clients", default="1,8,16,64")
    parser.add_argument(
        "--search-mode", choices=["semantic", "keyword", "hybrid"],
        help="mode sent to /search (default: none, so the server's search.mode)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--prepare-only", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recsys-bench-http-"))
    home = args.home or work / "home"
    data = args.data or work / "data"
    prepare(home, data)
    if args.prepare_only:
        return
    kind = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    bodies = request_bodies(home, search_mode=args.search_mode)
    clients = [int(c) for c in args.clients.split(",")]
    search_clients = [int(c) for c in args.search_clients.split(",")]
    d = args.duration
    print(
        f"load generator: {kind}; {args.workers} worker(s); {d:.0f} s per measurement; "
        f"search mode: {args.search_mode or 'the server default'}"
    )

    port = free_port()
    bare = start(
        [sys.executable, "-m", "uvicorn", "bench_http:bare_app", "--factory", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        port, "/bare", work / "bare.log", env={"PYTHONPATH": str(HERE)},
    )  # fmt: skip
    print(HEADER)
    floor: dict[int, Result] = {}
    try:
        load(kind, bare.url, "/bare", bodies["/bare"], 16, 1)  # warm-up
        for c in clients:
            floor[c] = load(kind, bare.url, "/bare", bodies["/bare"], c, d)
            print(row("bare litestar (floor)", c, floor[c]), flush=True)
    finally:
        bare.stop()

    port = free_port()
    server = start(
        RECSYS + ["--home", str(home), "serve", "--port", str(port), "--workers", str(args.workers)],
        port, "/health/ready", work / "server.log",
    )  # fmt: skip
    idle: dict[tuple[str, int], Result] = {}
    try:
        print(f"server RSS after warm-up (both models loaded): {server.rss_bytes() / 1e6:,.0f} MB")
        for path in ("/matrix_factor/similar", "/matrix_factor/user", "/search"):
            load(kind, server.url, path, bodies[path], 8, 1)  # warm-up
            for c in search_clients if path == "/search" else clients:
                idle[(path, c)] = load(kind, server.url, path, bodies[path], c, d)
                print(row(path, c, idle[(path, c)]), flush=True)
        print(f"server RSS after the load: {server.rss_bytes() / 1e6:,.0f} MB")
        for c in clients:
            sim = idle.get(("/matrix_factor/similar", c))
            if sim and c in floor:
                print(f"similar vs bare floor at {c} clients: {sim.rps / floor[c].rps:.0%}")
        if not args.skip_training:
            during_training(kind, server, bodies, d, idle)
    finally:
        server.stop()
        print(f"server log: {work / 'server.log'}")


def during_training(
    kind: str, server: Server, bodies: dict, d: float, idle: dict[tuple[str, int], Result]
) -> None:
    before = httpx.get(server.url + "/status").json()["models"]["als"]["version"]
    job = httpx.post(server.url + "/training", json={"model_type": "als", "force_retrain": True})
    job.raise_for_status()
    job_id = job.json()["id"]
    print(f"\nthe same load while training job {job_id} (als, forced) runs and publishes:")
    print(HEADER + "  job")
    rounds = [("/matrix_factor/similar", 16), ("/matrix_factor/user", 16), ("/search", 8)]
    state, i, failed = "queued", 0, 0
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        path, c = rounds[i % len(rounds)]
        r = load(kind, server.url, path, bodies[path], c, d)
        failed += r.failed
        state = httpx.get(f"{server.url}/training/{job_id}").json()["state"]
        ratio = r.p99_ms / idle[(path, c)].p99_ms if (path, c) in idle else float("nan")
        print(f"{row(path, c, r)}  {state} (p99 {ratio:.1f}x idle)", flush=True)
        i += 1
        if state in ("succeeded", "failed") and i % len(rounds) == 0:
            break
    job = httpx.get(f"{server.url}/training/{job_id}").json()
    # The new version is loaded by the server's refresher thread; time until requests see it.
    waited = time.monotonic()
    probe = bodies["/matrix_factor/similar"][0]
    while time.monotonic() - waited < 120:
        answer = httpx.post(server.url + "/matrix_factor/similar", json=probe)
        if answer.headers.get("X-Model-Version") == job.get("version"):
            break
        time.sleep(0.1)
    print(
        f"job {job['state']} in {job.get('seconds', 0):.0f} s: version {before} -> "
        f"{job.get('version')}; requests answered by it {time.monotonic() - waited:.1f} s after "
        f"the job finished; failed requests during training: {failed}; "
        f"server RSS {server.rss_bytes() / 1e6:,.0f} MB"
    )


if __name__ == "__main__":
    main()
