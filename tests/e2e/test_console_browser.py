"""The demo console in a real browser (Debian's chromium, headless, through chromium-driver) over
real services on the harness's Redis and Kafka. Without chromium these tests fail: they never skip.

Each test saves a screenshot of what it saw under reports/console/."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from services.common.bus.kafka_bus import ensure_topics
from services.common.bus.topics import platform_topics
from tests.e2e.conftest import ServiceProcess, launch
from tests.harness import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.integration

SCREENSHOTS = REPO_ROOT / "reports" / "console"
CHROMIUM, CHROMEDRIVER = "chromium", "chromedriver"
KNOWN_USER = "console-known-1"   # given six watches before the page looks it up
STACK = ("modelserver", "ingest", "stream", "experiments", "fraud", "fraud.stream", "recommender",
         "records", "lake")
CONSOLE_NAMES = {"modelserver": "MODEL_SERVER", "fraud.stream": "FRAUD_STREAM_METRICS"}
# These tests check what the pages show, not latency: on a busy 2-core machine the services'
# millisecond Redis deadlines would turn some answers into (correctly flagged) degraded ones.
PATIENT = {"MLSD_REDIS_TIMEOUT_S": "1", "MLSD_FRAUD_REDIS_TIMEOUT_S": "1",
           "MLSD_RECOMMENDER_REDIS_TIMEOUT_S": "1", "MLSD_EXPERIMENTS_REDIS_TIMEOUT_S": "1"}


@dataclass
class ConsoleStack:
    console: ServiceProcess
    services: dict[str, ServiceProcess]


def _watch(user: str, content: str) -> dict[str, Any]:
    return {"id": f"browser-{uuid.uuid4().hex}", "type": "watch", "source": "browser-test",
            "time": datetime.now(UTC).isoformat(),
            "data": {"user_id": user, "content_id": content, "watch_seconds": 1500,
                     "completed": True}}


def _post(ingest: ServiceProcess, *events: dict[str, Any]) -> None:
    response = httpx.post(f"{ingest.url}/v1/events", json={"events": list(events)}, timeout=10)
    assert response.status_code == 202, response.text


def _give_history(services: dict[str, ServiceProcess]) -> None:
    """KNOWN_USER's watches, applied by the stream: the page then finds a known user."""
    _post(services["ingest"], *(_watch(KNOWN_USER, f"t{i}") for i in range(1, 7)))
    deadline = time.monotonic() + 30
    while httpx.get(f"{services['recommender'].url}/v1/recommendations/{KNOWN_USER}",
                    timeout=10).json()["watch_count"] < 6:
        assert time.monotonic() < deadline, "the stream never applied the known user's watches"
        time.sleep(0.2)


def _give_experiment_results(services: dict[str, ServiceProcess]) -> None:
    """Forty users see a list (each one exposure), a few of them click: results to draw."""
    for n in range(40):
        user = f"console-ab-{n}"
        answer = httpx.get(f"{services['recommender'].url}/v1/recommendations/{user}",
                           params={"k": 5}, timeout=10).json()
        if n % 4 == 0:
            _post(services["ingest"], {
                "id": f"browser-{uuid.uuid4().hex}", "type": "click", "source": "browser-test",
                "time": datetime.now(UTC).isoformat(),
                "data": {"user_id": user, "content_id": answer["items"][0]["content_id"],
                         "position": 0, "request_id": answer["request_id"]}})
    deadline = time.monotonic() + 30
    url = f"{services['experiments'].url}/v1/experiments/rec-algorithm/results"
    while sum(v["exposed"] for v in httpx.get(url, timeout=10).json()["variations"]) < 40:
        assert time.monotonic() < deadline, "the stream never counted the exposures"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(redis_server: ServerProcess, kafka_server: ServerProcess, model_repository: Path,
          postgres_server: ServerProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """Every service of `make run` (one fraud scorer), then the console, told their ports by
    the same settings variables `make run` uses."""
    ensure_topics(kafka_server.address, platform_topics(3))
    logs = Path(tmp_path_factory.mktemp("console-stack"))
    services: dict[str, ServiceProcess] = {}
    try:
        for module in STACK:
            services[module] = launch(module, logs / f"{module}.log", redis_server.address,
                                      kafka_server.address, model_repository, **PATIENT,
                                      MLSD_POSTGRES_PORT=postgres_server.extra["port"],
                                      MLSD_LAKE_ROOT=str(logs / "lake"))
        ports = {f"MLSD_{CONSOLE_NAMES.get(name, name.upper())}_PORT": s.url.rsplit(":", 1)[1]
                 for name, s in services.items()}
        console = launch(
            "console", logs / "console.log", redis_server.address, kafka_server.address,
            model_repository, **ports, MLSD_FRAUD_STREAM_PROCESSES="1",
            MLSD_CONSOLE_SCRAPE_INTERVAL_S="1",
            MLSD_CONSOLE_LOAD_WORLDS_DIR=str(model_repository.parent / "worlds"),
            MLSD_CONSOLE_REPORTS_DIR=str(logs / "reports"))
        _give_history(services)
        _give_experiment_results(services)
        yield ConsoleStack(console, services)
        console.stop()
    finally:
        for service in services.values():
            service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [name for name in (CHROMIUM, CHROMEDRIVER) if shutil.which(name) is None]
    assert not missing, (f"{' and '.join(missing)} not found: the console's browser tests need "
                         "Debian's chromium and chromium-driver (infra/bootstrap.sh installs "
                         "them; `apt-get install chromium chromium-driver`)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which(CHROMIUM))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--disable-gpu"):
        options.add_argument(argument)
    # Selenium Manager would download a driver: point at Debian's, so nothing is fetched.
    driver = webdriver.Chrome(options=options, service=Service(str(shutil.which(CHROMEDRIVER))))
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_until(browser: WebDriver, condition: Callable[[WebDriver], Any],
               seconds: float = 10.0) -> Any:
    """Until condition holds; the page's script swaps fragments in, so an element found a
    moment ago may be gone: look again."""
    return WebDriverWait(browser, seconds, poll_frequency=0.05, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(condition)


def wait_for(browser: WebDriver, css: str, seconds: float = 10.0) -> WebElement:
    found: WebElement = wait_until(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, css), seconds)
    return found


def screenshot(browser: WebDriver, name: str) -> None:
    browser.save_screenshot(str(SCREENSHOTS / f"console-{name}.png"))


def open_page(browser: WebDriver, stack: ConsoleStack, path: str) -> None:
    browser.get(stack.console.url + path)
    assert "Traceback" not in browser.page_source


def problem_after(browser: WebDriver, form: WebElement, values: dict[str, str]) -> str:
    for name, value in values.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    earlier = {e.id for e in browser.find_elements(By.CSS_SELECTOR, ".problem")}
    form.find_element(By.CSS_SELECTOR, "button").click()
    shown: WebElement = wait_until(browser, lambda d: next(
        (e for e in d.find_elements(By.CSS_SELECTOR, ".problem") if e.id not in earlier), None))
    message = shown.text
    assert message and "Traceback" not in message and "Internal Server Error" not in message
    return message


def test_the_architecture_page_shows_each_service_health_and_rates(
        browser: WebDriver, stack: ConsoleStack) -> None:
    open_page(browser, stack, "/")
    health = {box.get_attribute("data-box"): box.get_attribute("data-health")
              for box in browser.find_elements(By.CSS_SELECTOR, "[data-box]")}
    assert health == dict.fromkeys(("ingest", "kafka", "stream", "recommender", "redis", "fraud",
                                    "fraud-stream-1", "experiments", "model-server", "records",
                                    "lake", "postgres"), "ready")
    # the page refreshes itself: after a window has passed, the rate is a number
    wait_until(browser, lambda d: "req/s" in d.find_element(
        By.CSS_SELECTOR, '[data-box="recommender"]').text)
    screenshot(browser, "architecture")


def test_a_known_user_gets_a_personal_list_and_an_unknown_one_a_cold_start(
        browser: WebDriver, stack: ConsoleStack) -> None:
    open_page(browser, stack, f"/recommendations?user={KNOWN_USER}")
    wait_for(browser, "ol.titles li .title")
    facts = browser.find_element(By.CSS_SELECTOR, ".facts").text
    assert "personalization full" in facts and "watches 6" in facts
    assert browser.find_elements(By.CSS_SELECTOR, ".badge")

    browser.find_element(By.XPATH, "//button[@class='pick' and text()='new-visitor-1']").click()
    wait_until(browser, lambda d: "new-visitor-1" in d.find_element(
        By.CSS_SELECTOR, ".facts").text)
    assert "personalization cold" in browser.find_element(By.CSS_SELECTOR, ".facts").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.titles li[data-content]")) == 10


def test_watch_changes_the_list_within_two_seconds(browser: WebDriver,
                                                   stack: ConsoleStack) -> None:
    open_page(browser, stack, f"/recommendations?user={KNOWN_USER}")
    first = wait_for(browser, "ol.titles li[data-content]")
    watched = first.get_attribute("data-content")
    clicked = time.monotonic()
    first.find_element(By.CSS_SELECTOR, "button.watch").click()
    result = wait_for(browser, ".watch-result", seconds=2.0)
    assert time.monotonic() - clicked < 2.0
    assert result.get_attribute("data-changed") == "true", result.text
    shown = [li.get_attribute("data-content")
             for li in browser.find_elements(By.CSS_SELECTOR, "ol.titles li[data-content]")]
    assert watched not in shown and "watches 7" in browser.find_element(
        By.CSS_SELECTOR, ".facts").text
    screenshot(browser, "recommendations")


EXPECTED_REASONS = {
    "ordinary": set(),
    "card-testing": {"CARD_TESTING", "VELOCITY_1M_COUNT"},
    "impossible-travel": {"IMPOSSIBLE_TRAVEL"},
    "account-takeover": {"NEW_DEVICE", "NEW_IP", "AMOUNT_HIGH"},
    "night-new-device": {"UNUSUAL_HOUR", "NEW_DEVICE", "AMOUNT_HIGH"},
}


@pytest.mark.parametrize("preset", list(EXPECTED_REASONS))
def test_each_fraud_preset_shows_its_decision_and_reasons(
        browser: WebDriver, stack: ConsoleStack, preset: str) -> None:
    open_page(browser, stack, "/fraud")
    browser.find_element(By.CSS_SELECTOR, f'button[data-preset="{preset}"]').click()
    decision = wait_for(browser, "section.decision")
    assert decision.get_attribute("data-degraded") == "false", decision.text
    codes = {li.get_attribute("data-code")
             for li in decision.find_elements(By.CSS_SELECTOR, "ul.reasons li[data-code]")}
    assert EXPECTED_REASONS[preset] <= codes, codes
    if preset == "ordinary":
        assert decision.get_attribute("data-action") == "approve"
    else:
        assert decision.get_attribute("data-action") in {"review", "decline"}
    if preset == "card-testing":
        # the burst: the velocity rules start firing part-way through, not from the first
        steps = decision.find_elements(By.CSS_SELECTOR, "tr[data-step]")
        assert len(steps) == 6
        assert "CARD_TESTING" not in steps[0].text and "CARD_TESTING" in steps[-1].text
        screenshot(browser, "fraud")


def test_experiment_results_render_with_intervals_and_a_verdict(
        browser: WebDriver, stack: ConsoleStack) -> None:
    open_page(browser, stack, "/experiments")
    section = wait_for(browser, '[data-experiment="rec-algorithm"]')
    assert "Verdict:" in section.text and "Sample ratio" in section.text
    assert len(section.find_elements(By.CSS_SELECTOR, "svg.intervals circle.rate")) == 2
    screenshot(browser, "experiments")


def test_a_short_load_run_draws_p99_against_the_budget(browser: WebDriver,
                                                         stack: ConsoleStack) -> None:
    open_page(browser, stack, "/load")
    form = browser.find_element(By.ID, "load-form")
    Select(form.find_element(By.NAME, "design")).select_by_value("fraud")
    for name, value in (("rps", "40"), ("duration_s", "4")):
        form.find_element(By.NAME, name).clear()
        form.find_element(By.NAME, name).send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button").click()
    wait_for(browser, "svg.p99 line.budget")
    wait_until(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".live").get_attribute(
        "data-running") == "false", seconds=40)
    live = browser.find_element(By.CSS_SELECTOR, ".live")
    assert "PASS" in live.text or "FAIL" in live.text, live.text
    assert browser.find_elements(By.CSS_SELECTOR, "svg.p99 polyline.line")
    screenshot(browser, "load")


def test_bad_input_in_every_form_gets_a_readable_message(browser: WebDriver,
                                                         stack: ConsoleStack) -> None:
    open_page(browser, stack, "/recommendations")
    form = browser.find_element(By.ID, "recs-form")
    assert "k:" in problem_after(browser, form, {"user": "u1", "k": "ten"})
    assert "user" in problem_after(browser, form, {"user": "x" * 129, "k": "5"})

    open_page(browser, stack, "/fraud")
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    form = browser.find_element(By.ID, "score-form")
    assert "amount: not a number" in problem_after(browser, form, {"amount": "lots"})
    open_page(browser, stack, "/fraud")
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    form = browser.find_element(By.ID, "score-form")
    assert "currency" in problem_after(browser, form, {"currency": "DOGE"})

    open_page(browser, stack, "/load")
    form = browser.find_element(By.ID, "load-form")
    assert "rate: at most" in problem_after(browser, form, {"rps": "100000"})
    assert "duration_s" in problem_after(browser, form, {"rps": "10", "duration_s": "soon"})
