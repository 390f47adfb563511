"""The consumer portal (smgw.han.portal) over real TLS on the HAN core's server, with real
stores: pages, downloads, login and logout, consumer isolation, the technician's lack of
access and the page of a degraded gateway."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from portal_harness import (
    OTHER_CONSUMER,
    OTHER_METER,
    OTHER_PASSWORD,
    OTHER_PROFILE,
    OTHER_USER,
    PortalEnv,
    form_token,
)
from smgw.han import demo, render

GERMAN_KWH = re.compile(r"^\d{1,3}(\.\d{3})*,\d{4}$")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with PortalEnv(tmp_path_factory.mktemp("portal")) as e:
        yield e


@pytest.fixture
def demo_client(env):
    c = env.client("demo", "demo")
    yield c
    c.close()


class Page(HTMLParser):
    """Just enough structure of a page for the checks: ids, table cells, links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html
        self.ids: dict[str, str] = {}
        self.links: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._stack: list[tuple[str, str | None]] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._text: dict[str, list[str]] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "table":
            self._table = a.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if a.get("id"):
            self._text[a["id"]] = []
        if tag not in ("input", "meta", "link", "br", "img"):
            self._stack.append((tag, a.get("id")))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        while self._stack:
            t, i = self._stack.pop()
            if i is not None:
                self.ids[i] = " ".join("".join(self._text.pop(i, [])).split())
            if t == tag:
                break

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        for t, i in self._stack:
            if i is not None and i in self._text:
                self._text[i].append(data)


def period_links(page: Page, profile: str) -> list[str]:
    return [h for h in page.links if re.fullmatch(rf"/messwerte/{profile}/\d+-\d+", h)]


# ------------------------------------------------------------------ login


def test_without_credentials_a_german_401_with_both_digest_algorithms(env):
    c = env.client()
    r = c.get("/")
    assert r.status == 401
    offers = r.headers.get_all("WWW-Authenticate")
    assert [re.search(r"algorithm=\"?([\w-]+)", o).group(1) for o in offers] == ["SHA-256",
                                                                                 "MD5"]
    assert all(f'realm="{env.gateway_id.lower()}"' in o and 'qop="auth"' in o for o in offers)
    assert "Anmeldung erforderlich" in r.text and 'lang="de"' in r.text
    assert c.get("/messwerte").status == 401 and c.get("/log.csv").status == 401


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_digest_login_with_either_algorithm_sets_the_session_cookie(env, algorithm):
    c = env.client("demo", "demo")
    r = c.get("/", prefer=algorithm)
    assert r.status == 200 and c.challenges == 1
    assert c._dig["algorithm"] == algorithm
    assert "session" in c.cookies
    # further requests reuse the nonce with a growing nc: no new challenge
    assert c.get("/messwerte").status == 200 and c.challenges == 1


def test_wrong_password_is_refused(env):
    c = env.client("demo", "falsch")
    r = c.get("/")
    assert r.status == 401 and "session" not in c.cookies


def test_client_certificate_login(env):
    d = env.demo
    c = env.client(cert=(d.client_cert, d.client_key))
    r = c.get("/")
    assert r.status == 200 and c.challenges == 0
    assert "mit Client-Zertifikat" in r.text and "Letztverbraucher LV1" in r.text


def test_logout_ends_the_session_and_the_next_page_asks_again(env):
    c = env.client("demo", "demo")
    token = form_token(c.get("/").text)
    sid = c.cookies["session"]
    r = c.post("/abmelden", {"token": token})
    assert r.status == 200 and "Sie sind abgemeldet" in r.text
    assert "session" not in c.cookies and c.cookies.get("abgemeldet") == "1"
    assert env.call(lambda: env.server.sessions.get(sid)) is None
    # the browser still sends its Digest credentials: the logout page stays until the
    # consumer chooses to log in again
    r = c.get("/messwerte")
    assert r.status == 200 and "Sie sind abgemeldet" in r.text and "Messwerte</h1>" not in r.text
    challenges = c.challenges
    r = c.get("/anmelden")
    assert c.challenges == challenges + 1          # a fresh 401 first
    assert r.status == 303 and r.header("Location") == "/"
    assert "abgemeldet" not in c.cookies and c.cookies["session"] != sid
    assert c.get("/").status == 200


def test_post_without_the_session_token_is_refused(demo_client):
    demo_client.get("/")
    r = demo_client.post("/selbsttest", {"token": "0" * 32})
    assert r.status == 403 and "Formular" in r.text
    r = demo_client.post("/abmelden", {})
    assert r.status == 403 and demo_client.get("/").status == 200


# ------------------------------------------------------------------ pages


def test_start_page(env, demo_client):
    r = demo_client.get("/")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/html")
    p = Page(r.text)
    assert '<html lang="de">' in r.text and 'name="viewport"' in r.text
    assert p.ids["gateway-id"] == env.gateway_id
    assert p.ids["zeit-status"] == "gültig"
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d gültig", p.ids["systemzeit"])
    assert p.tables["firmware"][1:] == [["smgw-host", "0.1.0", "a1b2c3"],
                                        ["smgwfw", "0.1.0", "d4e5f6"]]
    # current values: what the store holds, German formatted in kWh
    meter = demo._sim_server_id()
    rows = {row[0]: row for row in p.tables[f"zaehler-{meter}"][1:]}
    assert set(rows) == {"1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"}
    latest = env.call(lambda: {c["obis"]: c for c in env.data.current("LV1")})
    for obis in ("1-0:1.8.0", "1-0:2.8.0"):
        c = latest[obis]
        assert rows[obis][3] == render.quantity(c["value"], c["scaler"], c["unit"])[0]
        assert GERMAN_KWH.match(rows[obis][3]) and rows[obis][4] == "kWh"
        assert rows[obis][5] == "in Ordnung"
    assert rows["1-0:16.7.0"][4] == "W"
    assert "Bezug (Wirkarbeit +A), gesamt" in rows["1-0:1.8.0"][1]
    assert p.ids["selbsttest-naechster"] in ("jetzt",) or p.ids["selbsttest-naechster"].startswith(
        "ab ")
    assert "/zertifikat.pem" in p.links


def test_signature_certificate_download(env, demo_client):
    r = demo_client.get("/zertifikat.pem")
    assert r.status == 200
    assert r.body == env.call(lambda: env.keystore.sig.cert_pem())
    assert "attachment" in r.header("Content-Disposition")


def test_no_external_resources_and_no_scripts(env, demo_client):
    css = env.client().get("/static/portal.css")      # no login needed for the style sheet
    assert css.status == 200 and css.header("Content-Type").startswith("text/css")
    assert "@media (max-width" in css.text and ":focus-visible" in css.text
    assert not re.search(r"url\(|@import|https?://", css.text)
    pages = ["/", "/log", "/messwerte", "/messwerte/demo-taf7", "/messwerte/demo-taf1"]
    pages.append(period_links(Page(demo_client.get(pages[3]).text), "demo-taf7")[0])
    for path in pages:
        html = demo_client.get(path).text
        assert "<script" not in html and " style=" not in html, path
        refs = re.findall(r'(?:href|src)="([^"]+)"', html)
        assert all(r.startswith(("/", "#")) for r in refs), (path, refs)
        assert re.search(r"<main id=\"inhalt\"", html) and "<nav aria-label" in html
        # every table header cell says what it heads
        assert not re.search(r"<th(?=[\s>])(?![^>]*scope=)[^>]*>", html), path


def test_usage_points_list(demo_client):
    p = Page(demo_client.get("/messwerte").text)
    rows = p.tables["auswerteprofile"]
    assert rows[0] == ["Auswerteprofil", "Tarifanwendungsfall", "Zählpunkt", "Lieferant",
                       "Zähler", "Gültig", "Zustand"]
    by = {r[0]: r for r in rows[1:]}
    assert set(by) == {"demo-taf1", "demo-taf7"}
    assert by["demo-taf7"][1] == "TAF 7: Zählerstandsgangmessung"
    assert by["demo-taf1"][1] == "TAF 1: Datensparsamer Tarif"
    for r in by.values():
        assert r[2] == demo.USAGE_POINT and r[3] == demo.SUPPLIER and r[6] == "aktiv"
        assert r[4] == demo._sim_server_id()


def _values(env, profile: str, a: int, b: int) -> list:
    return env.call(lambda: env.data.derived("LV1", profile, a, b + 1))


def test_taf7_day_table_chart_and_downloads(env, demo_client):
    periods = Page(demo_client.get("/messwerte/demo-taf7").text)
    links = period_links(periods, "demo-taf7")
    assert len(links) >= 2
    day = links[1]                        # yesterday: a complete day
    a, b = (int(x) for x in day.rsplit("/", 1)[1].split("-"))
    assert render.local_day_start(a) == a and (b - a) // 3_600_000 in (23, 24, 25)
    r = demo_client.get(day)
    assert r.status == 200
    p = Page(r.text)
    rows = p.tables["werte"]
    assert rows[0] == ["Registrierzeitpunkt", "1-0:1.8.0 Zählerstand (kWh)", "Bezug (kWh)",
                       "1-0:2.8.0 Zählerstand (kWh)", "Einspeisung (kWh)",
                       "Erfassungszeitpunkt", "Status"]
    n = (b - a) // 900_000
    assert len(rows) == n + 1
    stored = {(v.value.register, v.value.target_ms): v.value for v in _values(env, "demo-taf7",
                                                                              a, b)}
    # the last row: the register at midnight and the quarter hour before it
    last = rows[-1]
    imp_end, imp_before = stored[("1-0:1.8.0", b)], stored[("1-0:1.8.0", b - 900_000)]
    assert last[0] == "24:00" and rows[1][0] == "00:15"
    assert last[1] == render.quantity(imp_end.value, imp_end.scaler, imp_end.unit)[0]
    delta = (Decimal(imp_end.value - imp_before.value).scaleb(imp_end.scaler)).scaleb(-3)
    assert last[2] == render.de_decimal(delta, 4)
    assert last[5] == render.de_time(imp_end.capture_ms, seconds=True)
    assert last[6] == "in Ordnung"
    # two charts (import, export), each an accessible SVG with one bar per quarter hour
    svgs = re.findall(r"<svg class=\"chart\".*?</svg>", r.text, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
        assert len(re.findall(r'<rect class="(?:bar|bar neg|gap)"', svg)) == n
    assert "je Viertelstunde" in svgs[0]

    csv_r = demo_client.get(day + ".csv")
    assert csv_r.status == 200 and csv_r.header("Content-Type").startswith("text/csv")
    assert 'filename="demo-taf7_' in csv_r.header("Content-Disposition")
    assert csv_r.body.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(csv_r.body.decode("utf-8-sig")), delimiter=";"))
    assert table[0][:9] == ["Zeitpunkt", "Erfassungszeitpunkt", "Zeitraum Beginn",
                            "Zeitraum Ende", "Zähler/Profil", "Register", "Art", "Wert",
                            "Einheit"]
    assert len(table) == 1 + 2 * n
    row = next(x for x in table[1:] if x[5] == "1-0:1.8.0" and x[0] == render.iso_local(b))
    assert Decimal(row[7].replace(",", ".")) == Decimal(imp_end.value).scaleb(
        imp_end.scaler - 3)
    assert row[8] == "kWh" and row[11] == "0" and len(row[13]) == 128   # r||s signature

    j = demo_client.get(day + ".json")
    assert j.status == 200 and j.header("Content-Type").startswith("application/json")
    doc = json.loads(j.body)
    assert (doc["profile"], doc["taf"], doc["consumer"]) == ("demo-taf7", 7, "LV1")
    assert doc["period"] == {"start": render.iso_local(a), "end": render.iso_local(b),
                             "start_ms": a, "end_ms": b}
    assert len(doc["values"]) == 2 * n
    v = next(x for x in doc["values"] if x["register"] == "1-0:1.8.0" and x["target_ms"] == b)
    assert (v["value"], v["scaler"], v["unit"]) == (str(imp_end.value), -1, "Wh")


def test_trudi_export_validates_against_the_schema(demo_client):
    from smgw.formats.trudi import validate

    for profile in ("demo-taf7", "demo-taf1"):
        links = period_links(Page(demo_client.get(f"/messwerte/{profile}").text), profile)
        for link in (links[0], links[-1]):
            r = demo_client.get(link + ".xml")
            assert r.status == 200
            assert r.header("Content-Type").startswith("application/xml")
            assert "_trudi.xml" in r.header("Content-Disposition")
            validate(r.body)
            assert f"<tariffName>{profile}</tariffName>".encode() in r.body
            assert f"<usagePointId>{demo.USAGE_POINT}</usagePointId>".encode() in r.body


def test_taf1_billing_periods_and_registers(env, demo_client):
    p = Page(demo_client.get("/messwerte/demo-taf1").text)
    links = period_links(p, "demo-taf1")
    periods = env.call(lambda: env.data.billing_periods("LV1", "demo-taf1"))
    assert links == [f"/messwerte/demo-taf1/{a}-{b}" for a, b in reversed(periods)]
    a, b = periods[-1]
    r = demo_client.get(links[0])
    page = Page(r.text)
    regs = page.tables["register"]
    assert regs[0] == ["Register", "Bezeichnung", "Stichtag", "Wert", "Einheit", "Status",
                       "Signiert"]
    by = {(row[0], row[1].split(" – ")[-1]): row for row in regs[1:]}
    total = by[("1-0:1.8.1", "Verbrauch im Zeitraum (Summe)")]
    stored = [v.value for v in _values(env, "demo-taf1", a, b)
              if v.value.kind == "sum" and v.value.period_start_ms == a]
    assert total[3] == render.quantity(stored[0].value, stored[0].scaler, stored[0].unit)[0]
    assert total[4] == "kWh" and total[6] == "ja"
    assert any(row[1].startswith("Zählerstand zu Beginn") for row in regs[1:])
    # the chart of the periods so far, with its numbers in a table too
    assert len(page.tables["werte"]) == len(periods) + 1
    assert re.search(r"<svg class=\"chart\"[^>]*role=\"img\"", r.text)
    # a period the profile does not have is not found
    assert demo_client.get(f"/messwerte/demo-taf1/{a}-{b + 1}").status == 404
    assert demo_client.get(f"/messwerte/demo-taf1/{a}-{b + 1}.csv").status == 404


def test_consumer_log_filter_paging_and_csv(env, demo_client):
    def add() -> None:
        for i in range(60):
            env.emit(10063, {"initiator": f"Test {i:02d}", "consumer_log": "LV1"})

    env.call(add)
    r = demo_client.get("/log")
    assert r.status == 200
    p = Page(r.text)
    rows = p.tables["log"][1:]
    assert len(rows) == 50
    assert p.tables["log"][0] == ["Nr.", "Zeitpunkt", "Stufe", "Ergebnis", "Meldung",
                                  "Ereignis"]
    nxt = next(h for h in p.links if "nach=" in h)
    rest = Page(demo_client.get(nxt.replace("&amp;", "&")).text).tables["log"][1:]
    seqs = [int(x[0]) for x in rows + rest]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) >= 60
    assert any("Test 59" in x[4] for x in rows + rest)
    # a range that ends before today has none of them
    page = Page(demo_client.get("/log?von=2020-01-01&bis=2020-01-31").text)
    assert page.tables["log"][1][0] == "Im gewählten Zeitraum gibt es keine Einträge."
    bad = demo_client.get("/log?von=31.02.2020")
    assert bad.status == 200 and "ist kein Datum" in Page(bad.text).ids["filter-fehler"]
    # the download holds the selection, German CSV
    c = demo_client.get("/log.csv?" + nxt.split("?", 1)[1].split("&nach=")[0])
    assert c.status == 200 and c.header("Content-Type").startswith("text/csv")
    table = list(csv.reader(io.StringIO(c.body.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["Nr.", "Zeitpunkt", "Zeit gültig", "Stufe", "Ergebnis", "Ereignis",
                        "Meldung"]
    assert [int(x[0]) for x in table[1:]] == seqs
    assert all(x[6] for x in table[1:])


def test_selftest_then_refused_within_ten_minutes(env, demo_client):
    token = form_token(demo_client.get("/").text)
    r = demo_client.post("/selbsttest", {"token": token})
    assert r.status == 200
    assert "Der Selbsttest wurde ausgelöst" in r.text and "bestanden" in r.text
    r = demo_client.post("/selbsttest", {"token": token})
    assert r.status == 429
    msg = Page(r.text).ids["meldung"]
    assert "Ein Selbsttest kann nur alle 10 Minuten ausgelöst werden." in msg
    m = re.search(r"Der nächste Selbsttest ist am (\d\d\.\d\d\.\d{4}) um (\d\d:\d\d:\d\d) Uhr "
                  r"möglich\.", msg)
    nxt = env.call(lambda: env.data.next_selftest_allowed_ms())
    assert m and m.groups() == (render.de_date(nxt), render.de_time(nxt, seconds=True))
    assert int(r.header("Retry-After")) > 500
    start = Page(demo_client.get("/").text)
    assert start.ids["selbsttest-naechster"] == f"ab {render.de_datetime(nxt)}"
    assert "bestanden (ausgelöst vom Letztverbraucher)" in start.ids["selbsttest-letzter"]


# ------------------------------------------------------------------ who sees what


def test_a_consumer_sees_only_their_own_data(env):
    n = env.client(OTHER_USER, OTHER_PASSWORD)
    d = env.client("demo", "demo")
    try:
        start = n.get("/")
        assert start.status == 200
        assert f"Letztverbraucher {OTHER_CONSUMER}" in start.text
        assert f"zaehler-{OTHER_METER}" in start.text
        assert demo._sim_server_id() not in start.text
        rows = Page(n.get("/messwerte").text).tables["auswerteprofile"][1:]
        assert [r[0] for r in rows] == [OTHER_PROFILE]
        demo_day = period_links(Page(d.get("/messwerte/demo-taf7").text), "demo-taf7")[0]
        own_day = period_links(Page(n.get(f"/messwerte/{OTHER_PROFILE}").text), OTHER_PROFILE)[0]
        for path in ("/messwerte/demo-taf7", "/messwerte/demo-taf1", demo_day,
                     demo_day + ".csv", demo_day + ".json", demo_day + ".xml"):
            r = n.get(path)
            assert r.status == 404, path
            assert demo._sim_server_id() not in r.text and demo.USAGE_POINT not in r.text
        for path in (f"/messwerte/{OTHER_PROFILE}", own_day, own_day + ".csv"):
            assert d.get(path).status == 404, path
        assert n.get(own_day + ".csv").status == 200
        # logs: the neighbour's log has their own login, not demo's
        log = n.get("/log?von=2000-01-01").text
        assert "Letztverbraucher nachbar" in log and "Letztverbraucher demo " not in log
        assert "Letztverbraucher nachbar" not in d.get("/log?von=2000-01-01").text
        csv_text = n.get("/log.csv?von=2000-01-01").body.decode("utf-8-sig")
        assert "demo" not in csv_text.replace("Letztverbraucher nachbar", "")
    finally:
        n.close()
        d.close()


PORTAL_PATHS = ["/", "/log", "/log.csv", "/messwerte", "/messwerte/demo-taf7",
                "/messwerte/demo-taf1", "/zertifikat.pem"]


def test_a_service_technician_gets_no_portal_data(env):
    t = env.client("service", "service")
    for path in PORTAL_PATHS:
        r = t.get(path)
        assert r.status == 403, path
        assert "Kein Zugriff" in r.text and "Servicetechniker" in r.text
        assert demo._sim_server_id() not in r.text and "kWh" not in r.text
        assert "BEGIN CERTIFICATE" not in r.text
    r = t.post("/selbsttest", {"token": "x"})
    assert r.status == 403
    t.close()


def test_degraded_gateway_shows_only_the_no_access_page(env):
    from smgw.opstate import Cause

    anonymous, d = env.client(), env.client("demo", "demo")
    assert d.get("/").status == 200
    env.call(lambda: env.ops.raise_cause(Cause.DB_INTEGRITY, "test", source="test"))
    try:
        for c in (anonymous, d):
            for path in PORTAL_PATHS + ["/anmelden"]:
                r = c.get(path)
                assert r.status == 503, path
                assert "Kein Zugriff möglich" in r.text and "Zurzeit ist leider" in r.text
                assert "kWh" not in r.text and "Abmelden" not in r.text
            assert c.post("/selbsttest", {"token": "x"}).status == 503
        assert anonymous.get("/static/portal.css").status == 200
        assert anonymous.challenges == 0          # no login is asked for
    finally:
        env.call(lambda: env.ops.administrator_reset("test"))
    assert d.get("/").status == 200


def test_restricted_operation_still_shows_the_consumer_their_data(env):
    # restricted operation stops measuring and sending, not the HAN (seed 000 §2.6): the same
    # rule as the M2M and CGI faces
    from smgw.opstate import Cause

    d = env.client("demo", "demo")
    env.call(lambda: env.ops.raise_cause(Cause.TIME_INVALID, "test", source="test"))
    try:
        r = d.get("/")
        assert r.status == 200 and "Kein Zugriff möglich" not in r.text
    finally:
        env.call(lambda: env.ops.clear_cause(Cause.TIME_INVALID, source="test"))
