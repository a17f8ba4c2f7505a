"""The dashboard's figures: page weight per page, and the time from navigation to the first
rendered results of the search, item and user pages against a reference-scale home, side by side
with the same JSON API calls made bare (httpx, no browser) in the same run.

    python benchmarks/bench_dashboard.py [--home DIR] [--data DIR] [--repeat N]

--home reuses (or fills, as bench_http.py does: several minutes the first time) a data home with
the reference sample (2M ratings, 1.7M users, 90K items, 94K products) and every model. Chromium
is Debian's (`apt-get install chromium`, or CHROMIUM_PATH), driven headless by Playwright.

"First rendered results" is when the page's first result appears in the DOM (a MutationObserver
records performance.now(), i.e. since the navigation started): the first product card (search),
the first line of the first model column (item), the first history line and the first model's
first pick (user). Each page is loaded once cold (a new browser context: no cache) and then
`--repeat` times warm; the goal from the issue is <= 300 ms each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_http import RECSYS, free_port, prepare, start  # noqa: E402

KINDS = ("als", "ease", "itemknn", "rp3beta", "popularity", "ss")
# The observer: the time each watched selector first matched, since navigation start.
WATCH = """
window.__firstSeen = {};
const selectors = %s;
new MutationObserver(() => {
  for (const s of selectors) {
    if (!(s in window.__firstSeen) && document.querySelector(s)) window.__firstSeen[s] = performance.now();
  }
}).observe(document, {subtree: true, childList: true, attributes: true});
"""


def sample_ids(home: Path) -> tuple[str, str, str]:
    """(a popular item, its title, a user with many ratings) from the store."""
    with sqlite3.connect(home / "recsys.db") as db:
        item, title = db.execute(
            "select p.item_id, p.title from product_catalog p join (select item_id, count(*) c "
            "from user_item_rating group by item_id order by c desc limit 50) r "
            "on r.item_id = p.item_id order by r.c desc limit 1"
        ).fetchone()
        (user,) = db.execute(
            "select user_id from user_item_rating group by user_id order by count(*) desc limit 1"
        ).fetchone()
    return item, title, user


def pages(item: str, title: str, user: str) -> dict[str, tuple[str, list[str]]]:
    """page -> (route, selectors that mark its first results)."""
    query = " ".join(title.split()[:3])
    return {
        "overview": ("", ["main[data-state='done'] .stats"]),
        "search": (f"#/search?{urlencode({'q': query})}", [".card"]),
        "item": (f"#/item/{quote(item, safe='')}", ["[data-model] li"]),
        "user": (f"#/user/{quote(user, safe='')}", [".history li", "[data-model] li"]),
    }


def api_calls(base: str, item: str, title: str, user: str, models: list[str]) -> dict[str, float]:
    """Milliseconds of the JSON calls each page makes, made bare and sequentially."""
    query = " ".join(title.split()[:3])
    calls = {
        "overview": [("GET", "/status", None), ("GET", "/evaluations/latest", None), ("GET", "/stats", None)],
        "search": [("POST", "/search", {"query": query, "top_k": 24})],
        "item": [("GET", f"/items/{item}", None), ("GET", "/status", None)]
        + [("POST", "/recommendations/similar", {"item_id": item, "n": 8, "model": m}) for m in models]
        + [("POST", "/search/similar", {"item_id": item, "n": 8})],
        "user": [("GET", f"/users/{user}/ratings?limit=50", None), ("GET", "/status", None)]
        + [("POST", "/recommendations/user", {"user_id": user, "n": 8, "model": m, "explain": True})
           for m in models],
    }  # fmt: skip
    out = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for page, requests in calls.items():
            started = time.perf_counter()
            for method, path, body in requests:
                r = client.request(method, path, json=body)
                r.raise_for_status()
            out[page] = (time.perf_counter() - started) * 1000
    return out


def measure_page(browser, base: str, route: str, selectors: list[str], context=None):
    """(ms to the last of `selectors` first appearing, bytes without product images, image bytes)."""
    own = context is None
    context = context or browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(WATCH % json.dumps(selectors))
    sizes = {"page": 0, "images": 0}

    def count(response) -> None:
        try:
            size = len(response.body())
        except Exception:  # a response without a body (redirect, 304)
            size = 0
        sizes["images" if "/image" in response.url else "page"] += size

    page.on("response", count)
    page.goto(base + "/" + route)
    page.wait_for_function(
        "sels => sels.every(s => s in window.__firstSeen)", arg=selectors, timeout=60_000
    )
    seen = page.evaluate("window.__firstSeen")
    page.wait_for_load_state("networkidle")
    page.close()
    if own:
        context.close()
    return max(seen[s] for s in selectors), sizes["page"], sizes["images"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="data home to reuse or fill")
    parser.add_argument("--data", type=Path, help="where the reference sample files are")
    parser.add_argument("--repeat", type=int, default=10, help="warm loads per page")
    args = parser.parse_args()
    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("no Chromium: apt-get install chromium (or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.gettempdir()) / "recsys-bench"
    work.mkdir(parents=True, exist_ok=True)
    home = args.home or work / "home"
    prepare(home, args.data or work / "data")
    for kind in KINDS:
        if not (home / "models" / kind / "current").exists():
            print(f"training {kind} ...", flush=True)
            subprocess.run([*RECSYS, "--home", str(home), "train", kind], check=True)
    item, title, user = sample_ids(home)
    port = free_port()
    server = start(
        [*RECSYS, "--home", str(home), "serve", "--port", str(port)], port, "/health/ready",
        work / "dashboard-server.log",
    )  # fmt: skip
    base = server.url
    try:
        models = [
            k for k, v in httpx.get(base + "/status").json()["models"].items() if v and k != "ss"
        ]
        bare = api_calls(base, item, title, user, models)  # also warms the server's caches
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            print(f"reference-scale home {home}; models {', '.join(models)} + ss; "
                  f"{args.repeat} warm loads per page\n")  # fmt: skip
            header = f"{'page':<9} {'weight':>9} {'images':>8} {'cold ms':>8} {'warm p50':>9} {'warm max':>9} {'API bare ms':>12}"
            print(header)
            print("-" * len(header))
            for name, (route, selectors) in pages(item, title, user).items():
                cold, weight, image_bytes = measure_page(browser, base, route, selectors)
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                warm = [
                    measure_page(browser, base, route, selectors, context=context)[0]
                    for _ in range(args.repeat)
                ]
                context.close()
                print(f"{name:<9} {weight / 1024:>7.0f}KB {image_bytes / 1024:>6.0f}KB {cold:>8.0f} "
                      f"{statistics.median(warm):>9.0f} {max(warm):>9.0f} {bare[name]:>12.0f}")  # fmt: skip
            browser.close()
        print("\nweight: every response but product images (uncompressed); cold: a new browser "
              "context; warm: cached assets; API bare: the page's JSON calls made one after another "
              "by httpx (the page makes its model calls concurrently).")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
