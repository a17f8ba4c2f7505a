"""The dashboard in a real browser: Debian's Chromium (headless), driven by Playwright, against a
real `recsys serve` on 127.0.0.1 with a small trained home (als, ease, popularity, ss and an
evaluation). Every test fails on a console error or a request to any other host.

Playwright's own browser download does not work here: the tests launch the system Chromium
(`CHROMIUM_PATH`, else `chromium` on PATH) and skip, saying why, where there is none; CI
installs it (.ci/run) and sets REQUIRE_BROWSER_TESTS=1, which turns those skips into failures. Set UPDATE_SCREENSHOTS=1 to rewrite the README's screenshots in docs/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from test_http import KEY, make_settings
from test_http_live import serve

from recsys import service
from recsys.ingest.sample import generate_sample

from helpers import rows, sqlite_url

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGE_BUDGET_BYTES = 300_000  # the issue: a few hundred KB per page at most, uncompressed


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")


def no_browser(why: str) -> None:
    """Skip, saying why; CI (REQUIRE_BROWSER_TESTS=1) must run these tests, so there it fails."""
    if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
        pytest.fail(f"browser tests required but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if not path:
        no_browser("no Chromium: apt-get install chromium (or set CHROMIUM_PATH)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dashboard")
    home = root / "home"
    sample = generate_sample(root / "data", users=600, items=120, ratings=8000, seed=3)
    settings = make_settings(home)
    service.ingest(settings, [sample.meta_path, sample.reviews_path])
    for kind in ("als", "ease", "popularity"):
        service.train(settings, kind)
    service.train_ss(settings)
    service.evaluate_models(settings, ["als", "ease"])
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Any]:
    with serve(home) as running:
        yield running


class Watched:
    """A page with every console error, page error and request it made."""

    def __init__(self, page: Any, base: str):
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.requests: list[Any] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.requests.append(r))

    def goto(self, route: str, ready: str = "main[data-state='done']") -> None:
        self.page.goto(self.base + "/" + route)
        self.page.wait_for_selector(ready, timeout=30_000)

    def check_clean(self) -> None:
        assert self.errors == []
        host = self.base.split("//")[1]
        strangers = [r.url for r in self.requests if r.url.split("/")[2] != host]
        assert strangers == [], "requests left 127.0.0.1"


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    contexts = []

    def opener(base: str, **context_args: Any) -> Watched:
        context = browser.new_context(**context_args)
        contexts.append(context)
        return Watched(context.new_page(), base)

    yield opener
    for context in contexts:
        context.close()


def first_rows(home: Path, sql: str) -> list[tuple]:
    return rows(sqlite_url(home), sql)


@pytest.fixture(scope="module")
def product(home: Path) -> tuple[str, str, str]:
    """(id, title, category) of the most rated product: every model knows it."""
    [row] = first_rows(
        home,
        "select p.item_id, p.title, p.main_category from product_catalog p join user_item_rating r"
        " on r.item_id = p.item_id group by p.item_id order by count(*) desc limit 1",
    )
    return row


def screenshot(page: Any, name: str, tmp_path: Path) -> None:
    """Into docs/ when asked to update them (the README shows them), else a throwaway file."""
    target = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(target / name), full_page=False)
    assert (target / name).stat().st_size > 10_000  # a rendered page, not an empty frame


# ---- search ----------------------------------------------------------------------------------
def test_search_by_keyboard_shows_product_cards(server, product, open_page, tmp_path):
    _, title, _ = product
    w = open_page(server.url, viewport={"width": 1280, "height": 900})
    w.goto("#/search", ready="input[name='q']")
    w.page.keyboard.type(title)  # the empty search page puts the cursor in the box
    w.page.keyboard.press("Enter")
    w.page.wait_for_selector("#results[data-state='done']")
    cards = w.page.locator(".card")
    assert cards.count() >= 5
    titles = cards.locator(".title").all_inner_texts()
    assert title in titles[:3], titles
    assert "q=" in w.page.url  # the query is in the address: a link can be shared
    first = cards.first
    assert re.search(r"score \d", first.inner_text())
    image = first.locator("img")
    assert image.get_attribute("src").startswith("/items/")  # through the server, not the CDN
    # this machine has no internet: the image is the server's placeholder, and it loaded
    w.page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    screenshot(w.page, "dashboard-search.png", tmp_path)
    w.check_clean()


def test_search_in_a_category_and_mode(server, product, open_page):
    _, title, category = product
    query = urlencode({"q": title.split()[-1], "mode": "keyword", "category": category})
    w = open_page(server.url)
    w.goto(f"#/search?{query}", ready="#results[data-state='done']")
    assert "keyword" in w.page.locator("#results p").first.inner_text()
    assert w.page.locator(".card").count() >= 1
    for meta in w.page.locator(".card .meta").all_inner_texts():
        assert meta.startswith("score") or category in meta, meta
    assert w.page.locator("select[name='mode']").input_value() == "keyword"
    assert w.page.locator("select[name='category']").input_value() == category
    w.check_clean()


# ---- item --------------------------------------------------------------------------------------
def test_click_through_to_an_item_and_its_similar_items(server, product, open_page, tmp_path):
    w = open_page(server.url, viewport={"width": 1280, "height": 1000})
    w.goto(f"#/search?{urlencode({'q': product[1]})}", ready="#results[data-state='done']")
    title = w.page.locator(".card .title", has_text=product[1]).first
    name = title.inner_text()
    title.click()
    w.page.wait_for_url(re.compile("#/item/"))
    w.page.wait_for_selector("main[data-state='done']")
    assert w.page.locator("h1").inner_text() == name
    for model in ("als", "ease", "popularity", "ss"):
        column = w.page.locator(f"[data-model='{model}']")
        assert column.get_attribute("data-state") == "done", column.inner_text()
        assert column.locator("li").count() >= 3, model
        assert "null" not in column.inner_text() and "undefined" not in column.inner_text()
    screenshot(w.page, "dashboard-item.png", tmp_path)
    # a similar item is a link to its own page
    link = w.page.locator("[data-model='ss'] li a").first
    other = link.inner_text()
    link.click()
    w.page.wait_for_function("name => document.querySelector('h1')?.innerText === name", arg=other)
    w.page.wait_for_selector("main[data-state='done']")
    w.check_clean()


def test_unknown_item_shows_the_error(server, open_page):
    w = open_page(server.url)
    w.goto("#/item/NO-SUCH-ITEM", ready="main[data-state='error']")
    assert "neither in the catalog nor rated" in w.page.locator("main [role='alert']").inner_text()
    # the 404 itself is the one console line Chromium writes for it
    assert all("404" in e for e in w.errors)


# ---- user ----------------------------------------------------------------------------------------
def test_user_history_newest_first_beside_picks_with_reasons(server, home, open_page, tmp_path):
    [(user, total)] = first_rows(
        home,
        "select user_id, count(*) c from user_item_rating group by user_id order by c desc limit 1",
    )
    w = open_page(server.url, viewport={"width": 1280, "height": 1000})
    w.goto("#/user")
    w.page.fill("input[name='user']", user)
    w.page.keyboard.press("Enter")
    w.page.wait_for_url(re.compile("#/user/."))
    w.page.wait_for_selector("main[data-state='done']")
    history = w.page.locator(".history li")
    assert history.count() == min(total, 50)
    dates = [d.strip() for d in w.page.locator(".history li .meta").all_inner_texts()]
    assert dates == sorted(dates, reverse=True)
    for model in ("als", "ease", "popularity"):
        assert w.page.locator(f"[data-model='{model}'] li").count() >= 3, model
    assert w.page.locator("[data-model='als'] .because").count() >= 1  # "because you rated X"
    assert "because you rated" in w.page.locator("[data-model='als']").inner_text()
    screenshot(w.page, "dashboard-user.png", tmp_path)
    w.check_clean()


def test_new_visitor_picks_from_items_chosen_on_the_page(server, product, open_page):
    w = open_page(server.url)
    w.goto("#/visitor", ready="input[type='search']")
    w.page.fill("input[type='search']", product[1])
    w.page.keyboard.press("Enter")
    w.page.wait_for_selector("#found .card button")
    w.page.locator("#found .card button").first.click()
    w.page.wait_for_url(re.compile("#/visitor[?]items="))
    w.page.wait_for_selector("main[data-state='done']")
    assert w.page.locator("#chosen li").count() == 1
    als = w.page.locator("[data-model='als']")
    assert als.locator("li").count() >= 3
    assert "because you rated" in als.inner_text()
    w.check_clean()


# ---- overview ------------------------------------------------------------------------------------
def test_overview_counts_models_evaluation_and_charts(server, home, open_page, tmp_path):
    w = open_page(server.url, viewport={"width": 1280, "height": 1100})
    w.goto("")
    [(ratings,)] = first_rows(home, "select count(*) from user_item_rating")
    assert f"{ratings:,}" in w.page.locator(".stats").inner_text()
    for kind in ("als", "ease", "popularity", "ss"):
        row = w.page.locator(f"tr[data-kind='{kind}']").inner_text()
        assert re.search(r"\d{8}T\d{6}Z", row), row  # its version
    assert "not trained" in w.page.locator("tr[data-kind='itemknn']").inner_text()
    # each model's metrics from the last evaluation
    assert re.search(r"NDCG@10 0\.\d{3}", w.page.locator("tr[data-kind='ease']").inner_text())
    table = w.page.locator("#evaluation").inner_text()
    assert "NDCG@10" in table and "popularity" in table and "als" in table
    assert w.page.locator(".chart canvas").count() == 4  # NDCG, long tail, per month, ratings
    screenshot(w.page, "dashboard-overview.png", tmp_path)
    w.check_clean()


def test_pages_are_light_and_fit_a_narrow_screen(server, open_page):
    w = open_page(server.url, viewport={"width": 360, "height": 740})
    for route, ready in [("", "main[data-state='done']"), ("#/search?q=shoes", "#results[data-state='done']"),
                         ("#/jobs", "main[data-state='done']")]:  # fmt: skip
        w.requests.clear()
        w.page.goto(server.url + "/" + route)
        w.page.wait_for_selector(ready)
        page_bytes = sum(
            len(r.response().body()) for r in w.requests
            if r.response() and "/image" not in r.url  # product images are the shop's
        )  # fmt: skip
        assert page_bytes < PAGE_BUDGET_BYTES, (route, page_bytes)
        overflow = w.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (route, overflow)
    w.check_clean()


# ---- jobs and keys --------------------------------------------------------------------------------
def test_start_a_training_with_the_key_and_watch_it_finish(home, open_page, tmp_path):
    with serve(home, RECSYS_SERVER_API_KEY=KEY) as keyed:
        w = open_page(keyed.url)
        w.page.goto(keyed.url + "/#/jobs")
        # the history needs the key: the page asks before calling
        w.page.wait_for_selector("dialog[open]")
        w.page.fill("#key-input", KEY)
        w.page.keyboard.press("Enter")
        w.page.wait_for_selector("main[data-state='done']")
        w.page.select_option("select[name='model_type']", "popularity")
        w.page.check("input[name='force']")
        w.page.click("#start-training")
        w.page.wait_for_selector("[data-job-state='succeeded']", timeout=60_000)
        job = w.page.locator("#job").inner_text()
        assert "published version" in job and "null" not in job
        assert w.page.locator("#job-history tr[data-job]").count() >= 1
        sent = [r for r in w.requests if "/training" in r.url]
        assert sent and all(r.headers.get("x-api-key") == KEY for r in sent)
        assert all(KEY not in r.url for r in w.requests)  # never in a URL
        assert w.page.evaluate("localStorage.length") == 0  # kept in this tab only
        w.check_clean()


def test_protected_server_asks_for_the_key_first_and_shows_refusals(home, open_page):
    with serve(home, RECSYS_SERVER_API_KEY=KEY, RECSYS_SERVER_PROTECT_ALL="true") as locked:
        assert httpx.get(locked.url + "/status").status_code == 401
        assert httpx.get(locked.url + "/").status_code == 200  # the page itself holds no data
        w = open_page(locked.url)
        w.page.goto(locked.url + "/")
        w.page.wait_for_selector("dialog[open]")
        assert not [r for r in w.requests if r.url.endswith("/status")]  # asked before calling
        w.page.fill("#key-input", "wrong-key")
        w.page.keyboard.press("Enter")
        w.page.wait_for_selector("#key-error:not([hidden])")
        assert "API key" in w.page.locator("#key-error").inner_text()
        w.page.fill("#key-input", KEY)
        w.page.keyboard.press("Enter")
        w.page.wait_for_selector("main[data-state='done']")
        assert w.page.locator(".chart canvas").count() == 4
        w.page.goto(locked.url + "/#/search?q=shoes")
        w.page.wait_for_selector("#results[data-state='done']")
        image = w.page.locator(".card img").first
        w.page.wait_for_function("img => img.src.startsWith('blob:')", arg=image.element_handle())
        # the wrong key's 401 is the only console error
        assert w.errors and all("401" in e for e in w.errors)
        w.errors.clear()
        w.check_clean()
