"""The page at ``/`` in a real headless Chromium, driven by Selenium through Debian's chromedriver.

The server needs an API key and has a loopback chat endpoint that streams; every host but loopback resolves to
nothing in the browser, so a page that needed the internet would fail here. A screenshot of the page is kept
under pytest's tmp dir, and also written to ``$RAGLINE_SCREENSHOT`` when that names a path.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.faces.http import create_app, running_server
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, ChatServer, make_app, recording_chat_server

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
KEY = "web-page-test-key"
QUESTION = "How often should I descale the Aurora 2 espresso machine?"
TOKENS = ("Descale ", "every ", "8 ", "weeks ", "[1].")
STORE = "ragline.apiKey"  # the sessionStorage item app.js keeps the key in


def _needs_browser() -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium with apt)")
    if CHROMEDRIVER is None:
        pytest.skip("no chromedriver on this machine (.ci/run installs Debian's chromium-driver with apt)")
    try:
        import selenium  # noqa: F401
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.skip("selenium is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    """The loopback chat endpoint, streaming TOKENS with a pause between each (so the page is seen with part of
    the answer)."""
    with recording_chat_server() as server:
        server.tokens, server.delay_s = TOKENS, 0.4
        yield server


@pytest.fixture(scope="module")
def url(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder, chat: ChatServer
) -> Iterator[str]:
    """The demo documents behind a server that needs KEY and answers through the streaming chat endpoint."""
    _needs_browser()
    llm = {"base_url": chat.url, "model": "test-model"}
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAGLINE_API_KEY", raising=False)  # the key is the config's, whatever this shell holds
        rag = make_app(tmp_path_factory.mktemp("web-index"), embedder, server={"api_key": KEY}, llm=llm)
        rag.ingest(DEMO_DOCS)
        try:
            with running_server(create_app(rag)) as base:
                yield base
        finally:
            rag.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _needs_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # the system browser and its own driver: Selenium Manager never runs
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1100,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('web-chromium-profile')}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# -- helpers ---------------------------------------------------------------------------------------------
def wait(browser: Any, condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda _: condition(), message=what)


def open_page(browser: Any, url: str, key: str | None = KEY) -> None:
    """The page as a new visit of its tab: with ``key`` already entered (kept in sessionStorage), or none."""
    browser.get(url + "/")
    if key is None:
        browser.execute_script("sessionStorage.clear()")
    else:
        browser.execute_script("sessionStorage.setItem(arguments[0], arguments[1])", STORE, key)
    browser.get(url + "/")
    wait(browser, lambda: browser.execute_script("return document.readyState") == "complete", "the page loads")


def by_id(browser: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id)


def results(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, "#results > li.result")


def files(browser: Any) -> list[str]:
    """Each result's file, in rank order."""
    from selenium.webdriver.common.by import By

    return [r.find_element(By.CSS_SELECTOR, ".citation .file").text for r in results(browser)]


def percent(text: str) -> int:
    return int(text.split("confidence ", 1)[1].split("%", 1)[0])


def first_citation(browser: Any) -> tuple[str, str, str]:
    """The first result's file, page and whole citation line."""
    from selenium.webdriver.common.by import By

    line = results(browser)[0].find_element(By.CSS_SELECTOR, ".citation")
    page = line.find_elements(By.CSS_SELECTOR, ".page")
    return line.find_element(By.CSS_SELECTOR, ".file").text, page[0].text if page else "", line.text


def search(browser: Any, query: str, path: str = "", types: str = "") -> None:
    """Fill the form and press Search; returns once the results list holds this search's results."""
    for field, value in (("query", query), ("filter-path", path), ("filter-types", types)):
        box = by_id(browser, field)
        box.clear()
        if value:
            box.send_keys(value)
    browser.execute_script("for (const id of ['results', 'summary']) document.getElementById(id).replaceChildren()")
    by_id(browser, "search-button").click()
    wait(browser, lambda: answered(browser), f"the answer to a search for {query!r}")


def answered(browser: Any) -> bool:
    """Whether the search shows its results (or that there are none), or an error: read in one script, as the
    page replaces "Searching…" with the count."""
    script = """const count = document.querySelector('#summary .count');
        return (!!count && /result/i.test(count.textContent)) || !document.getElementById('error').hidden;"""
    return bool(browser.execute_script(script))


def api_search(url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/search", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


# -- the files and their headers ----------------------------------------------------------------------------
def test_the_page_and_its_two_files_are_served_with_a_strict_policy(url: str) -> None:
    from importlib.resources import files

    page = httpx.get(f"{url}/", timeout=30)  # no key: the page holds no data, the API it calls asks for one
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["cache-control"] == "no-cache"
    assert page.text == files("pipeline.faces.web").joinpath("index.html").read_text()
    assert "<script>" not in page.text and "style=" not in page.text  # the policy allows no inline code
    again = httpx.get(f"{url}/", headers={"If-None-Match": page.headers["etag"]}, timeout=30)
    assert again.status_code == 304 and not again.content

    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")):
        asset = httpx.get(f"{url}/web/{name}", timeout=30)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
        assert asset.headers["content-security-policy"] == policy and asset.headers["etag"]
    for name in ("__init__.py", "..%2Fhttp%2Fweb.py", "%2e%2e/%2e%2e/config.py", "../app.py", "APP.JS", "app.js%00"):
        refused = httpx.get(f"{url}/web/{name}", timeout=30)
        assert refused.status_code == 404, name
        assert "error" in refused.json(), name
    schema = httpx.get(f"{url}/openapi.json", timeout=30).json()
    assert "/" not in schema["paths"] and not any(p.startswith("/web") for p in schema["paths"])


# -- the browser ---------------------------------------------------------------------------------------------
def test_a_401_asks_for_the_key_and_the_search_works_once_it_is_entered(browser: Any, url: str) -> None:
    open_page(browser, url, key=None)
    wait(browser, lambda: by_id(browser, "error").is_displayed(), "the 401 of /stats shown")
    assert by_id(browser, "key-form").is_displayed()
    by_id(browser, "query").send_keys(QUESTION)
    by_id(browser, "search-button").click()
    error = wait(browser, lambda: "401" in by_id(browser, "error").text and by_id(browser, "error"), "a 401")
    assert "API key" in error.text and not results(browser)
    assert "needs an API key" in by_id(browser, "key-message").text

    by_id(browser, "api-key").send_keys("not-the-key")
    by_id(browser, "key-save").click()
    wait(browser, lambda: "refused" in by_id(browser, "key-message").text, "a wrong key refused")
    by_id(browser, "api-key").send_keys(KEY)
    by_id(browser, "key-save").click()  # the search that was refused runs again, with the key
    wait(browser, lambda: results(browser), "results once the key is entered")
    assert not by_id(browser, "error").is_displayed() and not by_id(browser, "key-form").is_displayed()
    assert first_citation(browser)[:2] == ("aurora-2-manual.pdf", "p. 2")
    assert browser.execute_script("return sessionStorage.getItem(arguments[0])", STORE) == KEY
    assert "documents" in by_id(browser, "stats").text

    browser.refresh()  # kept in the tab: a reload needs no key
    wait(browser, lambda: "documents" in by_id(browser, "stats").text, "stats with the kept key")
    assert not by_id(browser, "error").is_displayed()


def test_a_question_shows_the_right_first_result_cited_with_confidence_marks_and_scores(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, url)
    search(browser, QUESTION)
    file, page, line = first_citation(browser)
    assert (file, page) == ("aurora-2-manual.pdf", "p. 2")
    assert line.startswith("aurora-2-manual.pdf, p. 2")
    expected = api_search(url, {"query": QUESTION, "top_k": 5})
    assert len(results(browser)) == len(expected["results"])
    first = expected["results"][0]
    assert results(browser)[0].get_attribute("data-chunk-id") == first["chunk_id"]

    confidence = by_id(browser, "summary").find_element(By.CSS_SELECTOR, ".confidence").text
    assert confidence.startswith("confidence ") and abs(percent(confidence) - expected["confidence"] * 100) <= 0.5

    # the evidence spans, as <mark>, exactly the characters the API names (code points, like Python's str)
    marks = [m.get_attribute("textContent") for m in results(browser)[0].find_elements(By.CSS_SELECTOR, ".text mark")]
    spans = first.get("highlights")
    assert spans, "the API names no highlights for the first result"
    assert marks == [first["text"][s["start"] : s["end"]] for s in spans]
    shown = results(browser)[0].find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent")
    assert shown == first["text"]  # the whole text, marks and all, as text

    # the per-stage scores: there, but only on demand
    scores = results(browser)[0].find_element(By.CSS_SELECTOR, "details.scores")
    dense = scores.find_elements(By.CSS_SELECTOR, "dd")[0]
    assert not dense.is_displayed()
    scores.find_element(By.TAG_NAME, "summary").click()
    wait(browser, dense.is_displayed, "the scores shown")
    assert dense.text == f"{first['scores']['dense']:.4f}"


def test_filters_narrow_the_results_by_type_and_path(browser: Any, url: str) -> None:
    open_page(browser, url)
    search(browser, QUESTION)
    assert files(browser)[0] == "aurora-2-manual.pdf" and len(set(files(browser))) > 1

    search(browser, QUESTION, types="md")
    assert files(browser)[0] == "employee-handbook.md" and set(files(browser)) == {"employee-handbook.md"}

    search(browser, QUESTION, types=".txt, html")
    assert set(files(browser)) <= {"faq.txt", "release-notes.html"}

    search(browser, QUESTION, path="faq.txt")
    assert set(files(browser)) == {"faq.txt"}

    search(browser, QUESTION, path="no-such-folder/")
    wait(browser, lambda: "No results" in by_id(browser, "summary").text, "no results")
    assert not results(browser) and not by_id(browser, "error").is_displayed()


def test_document_text_is_shown_as_text_with_marks_counted_in_code_points(browser: Any, url: str) -> None:
    """A chunk holding markup and a character outside the BMP, answered by a stand-in for fetch."""
    from selenium.webdriver.common.by import By

    open_page(browser, url)
    text = '\U0001f600 <img src=x onerror="window.hacked=1"> Descale every 8 weeks. <b>Rinse</b> after.'
    start = text.index("Descale")
    crafted = {
        "query": "descale",
        "searched_query": "descale aurora",
        "results": [
            {
                "rank": 1,
                "chunk_id": "c1",
                "source": "<script>x</script>.md",
                "root": "",
                "path": "<script>x</script>.md",
                "page": None,
                "heading": "<i>Care</i>",
                "text": text,
                "scores": {"dense": 0.5, "bm25": None, "fused": 0.25, "rerank": None},
                "highlights": [{"start": start, "end": start + len("Descale every 8 weeks.")}],
                "copies": ["backup/<b>old</b>.md", "care.md"],
            }
        ],
        "confidence": 0.2,
        "low_confidence": True,
        "reranked": False,
        "notices": ["<u>a notice</u>"],
        "timings_ms": {"embed": 1.5},
    }
    browser.execute_script(
        """const [body] = arguments; const real = window.fetch;
        window.fetch = (path, init) => path === "/search"
          ? Promise.resolve(new Response(body, {headers: {"Content-Type": "application/json"}}))
          : real(path, init);""",
        json.dumps(crafted),
    )
    search(browser, "descale")
    item = results(browser)[0]
    assert item.find_element(By.CSS_SELECTOR, ".text").get_attribute("textContent") == text
    assert [m.get_attribute("textContent") for m in item.find_elements(By.TAG_NAME, "mark")] == [
        "Descale every 8 weeks."
    ]
    assert item.find_element(By.CSS_SELECTOR, ".citation").text == "<script>x</script>.md, <i>Care</i>"
    assert item.find_element(By.CSS_SELECTOR, ".copies").text == "Also in: backup/<b>old</b>.md, care.md"
    assert (
        browser.execute_script("return document.querySelectorAll('main img, main script, main b, main i').length") == 0
    )
    assert browser.execute_script("return window.hacked") is None
    summary = by_id(browser, "summary").text
    assert (
        "confidence 20% (low" in summary and "searched for: descale aurora" in summary and "<u>a notice</u>" in summary
    )
    item.find_element(By.CSS_SELECTOR, "details.scores summary").click()
    assert [d.text for d in item.find_elements(By.CSS_SELECTOR, "dd")][:4] == ["0.5000", "–", "0.2500", "–"]


def test_the_page_loads_nothing_from_another_host_and_keeps_its_policy(browser: Any, url: str) -> None:
    browser.get_log("performance"), browser.get_log("browser")  # only this visit's entries from here on
    open_page(browser, url)
    search(browser, QUESTION)
    assert results(browser)
    origin = url.rstrip("/")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(origin + "/") for name in loaded), loaded
    sent = [
        event["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if (event := json.loads(entry["message"])["message"])["method"] == "Network.requestWillBeSent"
    ]
    assert f"{origin}/search" in sent and f"{origin}/web/app.js" in sent
    assert all(u.startswith(origin + "/") or u.startswith("data:") for u in sent), sent
    problems = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not problems  # nothing on the page breaks its own policy (no inline script or style)


def test_ask_streams_the_answer_after_its_sources(browser: Any, url: str, chat: ChatServer) -> None:
    open_page(browser, url)
    ask = wait(browser, lambda: by_id(browser, "ask-button").is_enabled() and by_id(browser, "ask-button"), "ask")
    assert by_id(browser, "ask-note").text == ""
    by_id(browser, "query").send_keys(QUESTION)
    ask.click()
    from selenium.webdriver.common.by import By

    sources = wait(browser, lambda: browser.find_elements(By.CSS_SELECTOR, "#sources li"), "the sources")
    assert sources[0].text.startswith("aurora-2-manual.pdf, p. 2")
    seen = set()
    final = "".join(TOKENS)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = by_id(browser, "answer").text
        seen.add(text)
        if text == final and by_id(browser, "answer").get_attribute("aria-busy") == "false":
            break
        time.sleep(0.05)
    assert final in seen
    assert any(text and text != final and final.startswith(text) for text in seen), seen  # seen as it grew
    assert first_citation(browser)[:2] == ("aurora-2-manual.pdf", "p. 2")  # the sources' search, as results
    assert not by_id(browser, "error").is_displayed()
    assert chat.requests and chat.requests[-1]["body"]["stream"] is True


def test_a_server_without_an_llm_disables_ask_and_says_why(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path_factory.mktemp("web-one-doc")
    (folder / "note.md").write_text("# Note\n\nThe Aurora 2 is descaled every eight weeks.\n")
    rag = make_app(tmp_path_factory.mktemp("web-plain-index"), embedder)
    rag.ingest(folder)
    try:
        with running_server(create_app(rag)) as base:
            open_page(browser, base, key=None)  # no key configured: none asked for
            wait(browser, lambda: "documents" in by_id(browser, "stats").text, "the stats")
            assert not by_id(browser, "ask-button").is_enabled()
            assert "LLM" in by_id(browser, "ask-note").text
            assert not by_id(browser, "error").is_displayed() and not by_id(browser, "key-form").is_displayed()
    finally:
        rag.close()


def test_a_screenshot_of_the_page_with_results(browser: Any, url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, url)
    by_id(browser, "query").send_keys(QUESTION)
    wait(browser, by_id(browser, "ask-button").is_enabled, "ask enabled")
    by_id(browser, "ask-button").click()  # the answer, its sources, and the results it was written from
    wait(browser, lambda: by_id(browser, "answer").get_attribute("aria-busy") == "false" and results(browser), "done")
    assert by_id(browser, "answer").text == "".join(TOKENS)
    results(browser)[0].find_element(By.CSS_SELECTOR, "details.scores summary").click()
    shot = tmp_path / "web_page.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    wanted = os.environ.get("RAGLINE_SCREENSHOT")
    if wanted:
        Path(wanted).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, wanted)
