"""A small closed-loop HTTP/1.1 load generator (the fallback when wrk is not installed).

    echo '[{"item_id": "B0..."}]' | python benchmarks/loadgen.py URL --clients 16 --seconds 5

Each client is one keep-alive connection sending POSTs with the JSON bodies from stdin in turn,
one request at a time. Prints one JSON line: requests, failed, rps, p50_ms, p99_ms. Raw asyncio
streams rather than an HTTP library, so the client costs little CPU next to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def client(
    host: str, port: int, requests: list[bytes], stop_at: float, latencies: list[float]
) -> int:
    failed = 0
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not 200 <= status < 300:
                failed += 1
    except (OSError, asyncio.IncompleteReadError):
        failed += 1
    finally:
        writer.close()
    return failed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    url = urlsplit(args.url)
    bodies = json.loads(sys.stdin.read())
    requests = []
    for body in bodies:
        data = json.dumps(body).encode()
        requests.append(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + args.seconds
    failed = await asyncio.gather(
        *(client(url.hostname, url.port, requests, stop_at, latencies) for _ in range(args.clients))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    print(
        json.dumps(
            {
                "requests": len(latencies),
                "failed": sum(failed),
                "rps": len(latencies) / elapsed,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
