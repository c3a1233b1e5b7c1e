"""The dashboard in a real browser (Debian's headless Chromium) against the running ledger, projector and API."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services.adapters.kafka.topics import producer, publish_raw
from services.devtools.demo.channels import Signer
from services.devtools.demo.loader import prepare
from services.devtools.demo.traffic import generate
from tests.e2e.conftest import MEETING_FILE, REPO

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MEETING = "cbak-2023-agm"
IMAGES = REPO / "docs" / "images"
PHONE = (390, 844)


def require_browser() -> None:
    """Fail (not skip) without Debian's chromium and its driver, unless skipping was asked for explicitly."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    if os.environ.get("VOTE_LEDGER_SKIP_BROWSER") == "1":
        pytest.skip(f"VOTE_LEDGER_SKIP_BROWSER=1 and {', '.join(missing)} missing")
    pytest.fail(f"{', '.join(missing)} missing: run `make system-deps` (or set VOTE_LEDGER_SKIP_BROWSER=1)")


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium driven through chromedriver, 1280 px wide."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def wait_for(what: str, check, timeout: float = 20.0, every: float = 0.2):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def http_ok(url: str) -> bool:
    """Whether GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def digits(text: str) -> int:
    """The integer a formatted figure shows ("47,920,922 (53.6%)" -> 47920922): separators are the locale's."""
    match = re.match(r"\s*([\d.,\u00a0\u202f' ]+)", text)
    assert match, f"no number in {text!r}"
    return int(re.sub(r"\D", "", match.group(1)))


# What the page shows, read from the DOM the user sees (text, not the tally object the script holds).
PAGE_FIGURES = """
const items = {};
for (const li of document.querySelectorAll('#items li[data-item]')) {
  const cols = {};
  for (const row of li.querySelectorAll('[data-col]')) cols[row.dataset.col] = row.querySelector('.value').textContent;
  items[li.dataset.item] = {cols, outcome: li.querySelector('.outcome').dataset.outcome,
                            margin: li.querySelector('.margin').textContent};
}
return {asOf: document.getElementById('as-of').textContent,
        present: document.getElementById('quorum-present').textContent,
        required: document.getElementById('quorum-required').textContent,
        met: document.getElementById('quorum-state').dataset.met, items};
"""


# Each item's outcome words and margin line.
ITEM_WORDS = """
const items = {};
for (const li of document.querySelectorAll('#items li[data-item]')) {
  const words = (cls) => li.querySelector(cls).textContent;
  items[li.dataset.item] = {outcome: words('.outcome'), margin: words('.margin')};
}
return {items};
"""

# The page's own stream module, alone (no page polls): follows the meeting's stream with ``token``;
# records the first tally's position and the reason the stream module gives when it stops.
FOLLOW_ALONE = """
const [token, path, done] = arguments;
Promise.all([import('/static/api.js'), import('/static/stream.js')]).then(([api, stream]) => {
  api.setToken(token);
  window.aloneTally = null;
  window.aloneEnd = null;
  stream.follow(path, {
    tally: (t) => { window.aloneTally = t.as_of_position; },
    signIn: (why) => { window.aloneEnd = why; },
  });
  done(true);
}, (err) => done(String(err)));
"""


def tally_margin(text: str) -> int | None:
    """The tally's own margin as an item's margin line shows it ("Margin: −1,234 shares"), else None."""
    match = re.fullmatch(r"Margin: ([+\u2212-]?)(.+) shares", text)
    return None if match is None else (-1 if match.group(1) in ("\u2212", "-") else 1) * digits(match.group(2))


def check_item_words(driver) -> None:
    """Every outcome is in words (no unknown code), every margin line the tally's own (not the forecast's)."""
    shown = driver.execute_script(ITEM_WORDS)
    assert shown["items"]
    for item, v in shown["items"].items():
        assert not v["outcome"].startswith("?"), f"{item}: unknown outcome code {v['outcome']!r}"
        # The tally JSON carries every item's margin (projections.outcomes.margin); shows_tally compares it.
        assert tally_margin(v["margin"]) is not None, f"{item}: not the tally's margin: {v['margin']!r}"


# Elements reaching past the viewport's right edge (the page scrolls sideways if any does), outermost first.
WIDER_THAN_VIEWPORT = """
const width = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth <= width) return [];
return Array.from(document.querySelectorAll('body *'))
  .filter((e) => e.getBoundingClientRect().right > width + 0.5)
  .slice(0, 8)
  .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`);
"""


# The text of every panel that shows one meeting's figures (the ledger's global status aside), and
# each figure of ``arguments[0]`` formatted as the page formats it (the browser's locale).
MEETING_TEXT = """
const fmt = new Intl.NumberFormat();
const ids = ['meeting-title', 'quorum-panel', 'items-panel', 'activity-panel', 'campaign-panel',
             'chain-position', 'chain-hash'];
return {text: ids.map((id) => document.getElementById(id).textContent).join('\\n'),
        formatted: arguments[0].map((n) => fmt.format(n)), tally: window.dashboardTally || null};
"""

# A meeting the API does not list, added to the picker as if it did (the operator's view of a failing read).
ADD_OPTION = """
const option = document.createElement('option');
option.value = option.textContent = arguments[0];
document.getElementById('meeting').append(option);
"""

# Picks meetings one after the other at once, each firing the picker's change event, as a quick operator.
PICK = """
const select = document.getElementById('meeting');
for (const id of arguments[0]) {
  select.value = id;
  select.dispatchEvent(new Event('change'));
}
"""


def meeting_figures(tally: dict, title: str, chain_hash: str) -> tuple[list[int], list[str]]:
    """A meeting's figures of four digits or more (smaller ones could be any count) and its title and chain hash."""
    numbers = [tally["as_of_position"], tally["outstanding"], tally["quorum"]["present"], tally["quorum"]["required"]]
    for cols in tally["items"].values():
        numbers += [abs(v) for v in cols.values() if isinstance(v, int) and not isinstance(v, bool)]
    return sorted({n for n in numbers if n >= 1000}), [title, chain_hash]


def shows_none_of(driver, figures: tuple[list[int], list[str]]) -> list[str]:
    """The figures and strings of ``figures`` still visible in a meeting panel (empty: none)."""
    numbers, strings = figures
    seen = driver.execute_script(MEETING_TEXT, numbers)
    left = [f for f in seen["formatted"] if f in seen["text"]] + [s for s in strings if s and s in seen["text"]]
    return left + (["window.dashboardTally"] if seen["tally"] else [])


def api_error(base: str, token: str, path: str) -> dict:
    """The API's error answer {error, code} for GET ``path`` (an HTTPError is expected)."""
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as err:
        return json.loads(err.read())
    pytest.fail(f"GET {path} answered 2xx")


def page_figures(driver) -> dict:
    """The tally as the page displays it, parsed back to integers."""
    shown = driver.execute_script(PAGE_FIGURES)
    if shown["asOf"] in ("", "–"):
        return {}
    return {
        "as_of_position": digits(shown["asOf"]),
        "quorum": {"present": digits(shown["present"]), "required": digits(shown["required"]), "met": shown["met"]},
        "items": {
            item: {
                "outcome": v["outcome"],
                "margin": tally_margin(v["margin"]),
                **{c: digits(t) for c, t in v["cols"].items()},
            }
            for item, v in shown["items"].items()
        },
    }


def expected_figures(tally: dict) -> dict:
    """The same figures from `tally --json`: every column the page shows (each option, broker non-votes), the margin."""
    return {
        "as_of_position": tally["as_of_position"],
        "quorum": {
            "present": tally["quorum"]["present"],
            "required": tally["quorum"]["required"],
            "met": "yes" if tally["quorum"]["met"] else "no",
        },
        "items": {item: {k: v for k, v in cols.items() if k != "not_voted"} for item, cols in tally["items"].items()},
    }


def shows_tally(driver, tally: dict) -> dict | None:
    """The page's figures once they equal the tally's (None while they differ)."""
    shown = page_figures(driver)
    return shown if shown == expected_figures(tally) else None


def screenshot(driver, path: Path, width: int, height: int | None = None, mobile: bool = False) -> None:
    """A PNG of the whole page at ``width`` CSS pixels (the viewport grown to the page's height)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height or 900, "deviceScaleFactor": 1, "mobile": mobile},
    )
    full = height or driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": full, "deviceScaleFactor": 1, "mobile": mobile}
    )
    time.sleep(0.5)  # the charts resize on a 200 ms debounce
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    path.write_bytes(base64.b64decode(shot["data"]))
    if os.environ.get("VOTE_LEDGER_UPDATE_SCREENSHOTS") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, IMAGES / path.name)


async def publish(settings, signed) -> None:
    """Publish signed submissions to the test's submissions topic, as the channels would."""
    async with producer(settings) as client:
        await publish_raw(client, settings.submissions_topic, [(s.key, s.payload) for s in signed])


def tally(vote_ledger) -> dict:
    """`vote-ledger tally --json` once the log and the projector have caught up."""
    vote_ledger.run("status", "--wait", "60")
    return json.loads(vote_ledger.run("tally", "--meeting", MEETING, "--json").stdout)


async def test_the_dashboard_shows_the_tally_live_without_a_reload_and_recovers_after_the_api_restarts(
    vote_ledger, settings, browser, tmp_path
):
    require_browser()
    # The settings fixture gave the API and the metrics endpoints free ports (never 8470-8472).
    base = f"http://127.0.0.1:{settings.api_port}"
    vote_ledger.run("db", "migrate")
    # Three processes, so the API alone can be restarted while the ledger and projector keep running.
    vote_ledger.start("services", "run", "ledger", name="ledger")
    vote_ledger.start("services", "run", "projector", name="projector")
    api = vote_ledger.start("services", "run", "api", name="api-1")
    vote_ledger.run("meeting", "load", str(MEETING_FILE), "--simulated-channels")
    spec, register, sim, positions = prepare(MEETING_FILE)
    submissions = list(generate(spec, positions, sim, count=3000, seed=13))
    signer = Signer(spec, register, sim)
    batches = [list(signer.signed(submissions[a : a + 1000])) for a in (0, 1000, 2000)]
    await publish(settings, batches[0])
    first = tally(vote_ledger)
    token = vote_ledger.run("api", "token", "issue", "--name", "browser-test", "--role", "ops").stdout.strip()
    wait_for("the API to answer /healthz", lambda: http_ok(base + "/healthz"), timeout=30)

    from selenium.webdriver.common.by import By

    # A wrong token: the page says the API refused it and stays on the sign-in form.
    browser.get(base + "/")
    browser.find_element(By.ID, "token").send_keys("vl_000000000000_" + "x" * 43)
    browser.find_element(By.ID, "login-form").submit()
    wait_for("the refusal", lambda: "refused" in browser.find_element(By.ID, "login-message").text)
    assert browser.find_element(By.ID, "login").is_displayed()

    token_field = browser.find_element(By.ID, "token")
    token_field.clear()
    token_field.send_keys(token)
    browser.find_element(By.ID, "login-form").submit()
    wait_for("the page to show `tally --json`", lambda: shows_tally(browser, first))
    assert browser.execute_script("return sessionStorage.getItem('vote-ledger.token')") == token
    browser.execute_script("window.notReloaded = true")
    wait_for(
        "the stream to be live", lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "live"
    )

    # Votes published now reach the page through the event stream: same document, new figures.
    await publish(settings, batches[1])
    second = tally(vote_ledger)
    assert second["quorum"]["present"] > first["quorum"]["present"]
    wait_for("the page to show the new tally", lambda: shows_tally(browser, second), timeout=15)
    assert browser.execute_script("return window.notReloaded") is True
    for panel in ("log-head", "chain-hash", "parked", "projector-lag"):  # the timeline's and /v1/status's figures
        wait_for(
            f"#{panel} (messages: {browser.find_element(By.ID, 'dashboard-message').text!r})",
            lambda panel=panel: browser.find_element(By.ID, panel).text not in ("", "–"),
        )
    # Each of these replays the meeting (about 4 s each, two at a time; a third waits or is told 503 busy
    # and asked again at the page's next refresh): on a loaded machine, more than the 20 s default.
    wait_for("the call list", lambda: browser.find_elements(By.CSS_SELECTOR, "#call-list td[data-label]"), 60)
    wait_for("the forecast", lambda: browser.find_elements(By.CSS_SELECTOR, "#forecast tr[data-forecast]"), 60)
    check_item_words(browser)
    screenshot(browser, tmp_path / "dashboard.png", 1280)

    # The API restarts; the page notices, reconnects with back-off and goes on updating.
    api.terminate()
    api.wait(timeout=20)
    wait_for(
        "the page to notice", lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "down"
    )
    vote_ledger.start("services", "run", "api", name="api-2")
    wait_for("the API to answer again", lambda: http_ok(base + "/healthz"), timeout=30)
    await publish(settings, batches[2])
    third = tally(vote_ledger)
    wait_for("the page to show the tally after the restart", lambda: shows_tally(browser, third), timeout=40)
    assert browser.execute_script("return window.notReloaded") is True
    # A poll that failed while the API was down shows its error in place of the timeline's figures until
    # the next one answers (on the next pushed tally, or within 15 s).
    wait_for(
        "the timeline and status after the restart",
        lambda: (
            browser.find_element(By.ID, "dashboard-message").text == ""
            and browser.find_element(By.ID, "chain-hash").text not in ("", "–")
        ),
        timeout=30,
    )

    # A phone: everything fits the width (no horizontal scrolling).
    screenshot(browser, tmp_path / "dashboard-phone.png", *PHONE, mobile=True)
    overflow = browser.execute_script(WIDER_THAN_VIEWPORT)
    assert not overflow, f"horizontal scrolling at {PHONE[0]} px, elements past the right edge: {overflow}"

    # Another meeting whose reads fail: at once every meeting panel says "loading…", then each shows the
    # API's error and code; none of this meeting's figures, title or chain hash stays under the other name.
    from selenium.webdriver.support.select import Select

    title = browser.find_element(By.ID, "meeting-title").text
    figures = meeting_figures(third, title, browser.find_element(By.ID, "chain-hash").text)
    assert title and len(shows_none_of(browser, figures)) > 3, "the check sees the meeting's figures before"
    missing = "no-such-meeting-13"
    errors = {  # each panel's read and the API's answer to it
        panel: api_error(base, token, f"/v1/meetings/{missing}{suffix}")
        for panel, suffix in (
            ("meeting-title", ""),
            ("quorum-state", "/tally"),
            ("chain-position", "/timeline"),
            ("call-list", "/call-list?limit=20"),
            ("forecast", "/campaign"),
        )
    }
    browser.execute_script(ADD_OPTION, missing)
    Select(browser.find_element(By.ID, "meeting")).select_by_value(missing)
    # The panels are cleared in the change handler itself, before any answer comes back.
    assert not shows_none_of(browser, figures), "the previous meeting's figures after the switch"
    for panel, error in errors.items():
        wait_for(
            f"#{panel} to show {error}",
            lambda panel=panel, error=error: (
                f"{error['error']} ({error['code']})" in browser.find_element(By.ID, panel).text
            ),
        )
    assert not shows_none_of(browser, figures), "the previous meeting's figures under the failing one"
    # A quick operator: the meeting, then at once the failing one again. The meeting's late answers and
    # stream events are dropped (they are tagged with the selection they were made for).
    browser.execute_script(PICK, [MEETING, missing])
    wait_for(
        "the failing meeting's errors again",
        lambda: all(e["code"] in browser.find_element(By.ID, panel).text for panel, e in errors.items()),
    )
    time.sleep(1.5)  # room for a late answer of the meeting picked in between
    assert not shows_none_of(browser, figures), "a late answer of the meeting picked in between"
    # Back to the meeting: its figures are `tally --json`'s again.
    Select(browser.find_element(By.ID, "meeting")).select_by_value(MEETING)
    wait_for("the page to show `tally --json` after the switch back", lambda: shows_tally(browser, third))
    wait_for("the meeting's title again", lambda: browser.find_element(By.ID, "meeting-title").text == title)

    # The token is revoked: the stream's recheck or the next poll gets 401 and the page asks for a token again.
    vote_ledger.run("api", "token", "revoke", token.split("_")[1])
    wait_for("the sign-in form after the revocation", lambda: browser.find_element(By.ID, "login").is_displayed(), 30)
    assert "refused" in browser.find_element(By.ID, "login-message").text
    assert browser.execute_script("return sessionStorage.getItem('vote-ledger.token')") is None
    assert browser.execute_script("return window.notReloaded") is True

    # A stream the API ends with `event: error`: the page's stream module alone (signed out, nothing
    # polls), on a second token revoked while its stream is open. The stream's recheck ends it with
    # `unauthenticated`, and the module hands on the API's reason and code (a plain 401 carries no code).
    second = vote_ledger.run("api", "token", "issue", "--name", "browser-test-2", "--role", "ops").stdout.strip()
    path = f"/v1/meetings/{MEETING}/tally/stream"
    assert browser.execute_async_script(FOLLOW_ALONE, second, path) is True
    wait_for("the lone stream's first tally", lambda: browser.execute_script("return window.aloneTally"))
    vote_ledger.run("api", "token", "revoke", second.split("_")[1])
    ended = wait_for("the lone stream's end", lambda: browser.execute_script("return window.aloneEnd"), timeout=30)
    assert "(unauthenticated)" in ended and second.split("_")[1] in ended, ended
