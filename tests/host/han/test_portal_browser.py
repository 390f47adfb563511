"""The consumer portal in a real browser: Debian's Chromium driven by Playwright, logging in
with HTTP Digest (Chromium computes it) or a client certificate, against the HAN server with
real stores (portal_harness.PortalEnv).

Every page visited is saved as a screenshot to ``test-artifacts/portal/`` under the repository
(gitignored); the paths are written to the terminal as the tests run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal_harness import OTHER_PASSWORD, OTHER_PROFILE, OTHER_USER, PortalEnv, artifacts_dir
from smgw.han import demo

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
GERMAN_KWH = re.compile(r"^\d{1,3}(\.\d{3})*,\d{4}$")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="/usr/bin/chromium is missing (Debian package 'chromium'); the "
                              "browser tests need a real Chromium"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with PortalEnv(tmp_path_factory.mktemp("portal-browser")) as e:
        yield e


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shot(capsys):
    """``shot(page, name)``: a full-page screenshot, its path printed to the terminal."""
    out = artifacts_dir()
    taken: list[Path] = []

    def take(page, name: str) -> Path:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        with capsys.disabled():
            print(f"\n  screenshot: {path}")
        return path

    yield take
    assert all(p.stat().st_size > 1000 for p in taken)


def nav(page, name: str):
    return page.get_by_role("navigation", name="Hauptnavigation").get_by_role(
        "link", name=name, exact=True)


def context(browser, env, user: str | None = None, password: str | None = None, **kw):
    opts = {"ignore_https_errors": True, "locale": "de-DE", "accept_downloads": True, **kw}
    if user is not None:
        opts["http_credentials"] = {"username": user, "password": password}
    return browser.new_context(**opts)


def test_consumer_reads_values_downloads_csv_sees_log_selftest_and_logs_out(
        env, browser, shot, capsys):
    ctx = context(browser, env, "demo", "demo")
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(env.url + "/")
    assert page.locator("h1").inner_text() == "Startseite"
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.locator("#zeit-status").inner_text() == "gültig"
    meter = demo._sim_server_id()
    value = page.locator(f"#zaehler-{meter} td[data-obis='1-0:1.8.0']").inner_text()
    assert GERMAN_KWH.match(value), value
    assert page.locator("#gateway-id").inner_text() == env.gateway_id
    shot(page, "01-startseite")

    # keyboard: the first Tab reaches the skip link, and focus is visible
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Zum Inhalt springen"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    shot(page, "01b-startseite-fokus")

    nav(page, "Messwerte").click()
    assert page.locator("h1").inner_text() == "Messwerte"
    shot(page, "02-messwerte")
    page.get_by_role("link", name="demo-taf7").click()
    assert "Tage" in page.locator("h1").inner_text()
    shot(page, "03-tage")
    days = page.locator("ul.periods a")
    assert days.count() >= 2
    days.nth(1).click()                       # yesterday: a whole day
    assert page.locator("h1").inner_text().startswith("Viertelstundenwerte vom ")
    rows = page.locator("#werte tbody tr")
    assert rows.count() in (92, 96, 100)
    assert page.locator("svg.chart").count() == 2
    assert page.locator("svg.chart").first.is_visible()
    assert page.locator("svg.chart > title").first.text_content().startswith(
        "Bezug je Viertelstunde")
    shot(page, "04-tag-viertelstundenwerte")

    with page.expect_download() as dl:
        page.get_by_role("link", name="CSV herunterladen").click()
    download = dl.value
    assert re.fullmatch(r"demo-taf7_\d{8}-\d{8}\.csv", download.suggested_filename)
    saved = artifacts_dir() / download.suggested_filename
    download.save_as(str(saved))
    text = saved.read_bytes().decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("Zeitpunkt;Erfassungszeitpunkt;")
    assert len(lines) == 1 + 2 * rows.count()
    with capsys.disabled():
        print(f"\n  download: {saved}")

    nav(page, "Messwerte").click()
    page.get_by_role("link", name="demo-taf1").click()
    page.locator("ul.periods a").first.click()
    assert page.locator("h1").inner_text().startswith("Abrechnungszeitraum ")
    assert page.locator("#register tbody tr").count() >= 3
    shot(page, "05-abrechnungszeitraum")

    nav(page, "Letztverbraucher-Log").click()
    assert page.locator("h1").inner_text() == "Letztverbraucher-Log"
    log_text = page.locator("#log").inner_text()
    assert "Letztverbraucher demo am SMGW angemeldet" in log_text
    shot(page, "06-letztverbraucher-log")

    nav(page, "Startseite").click()
    page.get_by_role("button", name="Selbsttest auslösen").click()
    assert page.locator("h1").inner_text() == "Selbsttest"
    assert "Der Selbsttest wurde ausgelöst" in page.locator("#meldung").inner_text()
    shot(page, "07-selbsttest")
    page.get_by_role("link", name="Zur Startseite").click()
    assert page.locator("#selbsttest-naechster").inner_text().startswith("ab ")
    page.get_by_role("button", name="Selbsttest auslösen").click()
    msg = page.locator("#meldung").inner_text()
    assert "Ein Selbsttest kann nur alle 10 Minuten ausgelöst werden." in msg
    assert re.search(r"Der nächste Selbsttest ist am \d\d\.\d\d\.\d{4} um \d\d:\d\d:\d\d Uhr "
                     r"möglich\.", msg)
    shot(page, "08-selbsttest-abgelehnt")

    page.get_by_role("link", name="Zur Startseite").click()
    page.get_by_role("button", name="Abmelden").click()
    assert "Sie sind abgemeldet" in page.locator("#meldung").inner_text()
    shot(page, "09-abgemeldet")
    # the browser still holds the Digest credentials, yet the portal stays logged out
    page.goto(env.url + "/messwerte")
    assert page.locator("h1").inner_text() == "Abgemeldet"
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert "session" not in cookies and cookies["abgemeldet"]["httpOnly"]
    # logging in again asks for the credentials (answered by the context) and works
    page.get_by_role("link", name="Erneut anmelden").click()
    assert page.locator("h1").inner_text() == "Startseite"
    ctx.close()


def test_phone_layout_has_no_horizontal_scrolling(env, browser, shot):
    ctx = context(browser, env, "demo", "demo", viewport={"width": 390, "height": 844},
                  device_scale_factor=2, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.goto(env.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "10-startseite-telefon")
    page.goto(env.url + "/messwerte/demo-taf7")
    page.locator("ul.periods a").nth(1).click()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    # the wide table scrolls inside its own region, the chart fits the screen
    box = page.locator("svg.chart").first.bounding_box()
    assert box["width"] <= 390
    shot(page, "11-tag-telefon")
    ctx.close()


def test_second_consumer_never_sees_the_first_ones_data(env, browser, shot):
    ctx = context(browser, env, OTHER_USER, OTHER_PASSWORD)
    page = ctx.new_page()
    page.goto(env.url + "/")
    body = page.content()
    assert "Letztverbraucher LV2" in body
    assert demo._sim_server_id() not in body
    shot(page, "12-zweiter-letztverbraucher")
    page.goto(env.url + "/messwerte")
    names = page.locator("#auswerteprofile tbody th").all_inner_texts()
    assert names == [OTHER_PROFILE]
    page.goto(env.url + "/messwerte/demo-taf7")
    assert page.locator("h1").inner_text() == "Nicht gefunden"
    assert demo.USAGE_POINT not in page.content()
    shot(page, "13-fremde-daten-nicht-gefunden")
    page.goto(env.url + "/log?von=2000-01-01")
    log_text = page.locator("#log").inner_text()
    assert "Letztverbraucher nachbar" in log_text and "Letztverbraucher demo" not in log_text
    ctx.close()


def test_client_certificate_login_in_the_browser(env, browser, shot):
    d = env.demo
    ctx = context(browser, env, client_certificates=[{
        "origin": env.url, "certPath": str(d.client_cert), "keyPath": str(d.client_key)}])
    page = ctx.new_page()
    page.goto(env.url + "/")
    assert page.locator("h1").inner_text() == "Startseite"
    assert "mit Client-Zertifikat" in page.locator("footer").inner_text()
    shot(page, "14-anmeldung-zertifikat")
    ctx.close()


def test_technician_and_degraded_state(env, browser, shot):
    from smgw.opstate import Cause

    ctx = context(browser, env, "service", "service")
    page = ctx.new_page()
    page.goto(env.url + "/")
    assert page.locator("h1").inner_text() == "Kein Zugriff"
    assert "kWh" not in page.content()
    shot(page, "15-servicetechniker")
    ctx.close()

    env.call(lambda: env.ops.raise_cause(Cause.DB_INTEGRITY, "browser test", source="test"))
    try:
        ctx = context(browser, env)                 # no credentials: no login is asked for
        page = ctx.new_page()
        resp = page.goto(env.url + "/")
        assert resp.status == 503
        assert page.locator("h1").inner_text() == "Kein Zugriff möglich"
        assert "Der Gateway-Administrator wurde bereits informiert" in page.content()
        shot(page, "16-kein-zugriff")
        ctx.close()
    finally:
        env.call(lambda: env.ops.administrator_reset("test"))
