"""The PPC-style HAN CGI (smgw.han.ppc) over real TLS, spoken the way the existing clients speak
it (han-clients.md §A): py-ppc-smgw, the legacy ha-ppc-smgw client, node-red, TRON4R, openHAB,
the bash/Python exporters; the signed CMS exports checked with our verifier and with
``openssl cms -verify``; the technician CGI with the messages of seed 000 §6.2; a role matrix."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import lxml.etree
import lxml.html
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from fixtures_faces import (ALICE, BOB, FIRMWARE, GRID_MS, TECH_PASSWORD, TECH_USER, TZ,
                            cells, cookie_of, hidden, make_world, serve)
from hankit import Digest, digest_request, nodered_parse, run
from smgw.han import cosem, ppc
from smgw.han import ppc_html as H
from smgw.logbook.chain import Signer
from smgw.logbook.store import Logbooks
from smgw.security import cms

CGI = H.CONSUMER_CGI
TECH = H.TECH_CGI
NS_PG = "urn:k461-dke-de:profile_generic-1"
NS_EXT = "urn:k461-dke-de:extension-1"


@pytest.fixture(scope="module")
def world(tmp_path_factory, keystore):
    w = make_world(tmp_path_factory.mktemp("ppc-world"), keystore)
    yield w
    w.close()


class Client:
    """One PPC client's habits: Digest header ``style``; ``handshake`` "reuse" (one nonce, nc
    counting up) or "every" (a new 401 round trip for every request, TRON4R/curl); how it
    returns the cookie (``cookie``: "plain", "pyppc" = ``session=v; Cookie=v``, "raw" = the
    Set-Cookie value as it came, None = never); the request body's Content-Type."""

    def __init__(self, s, http, user, password, *, style="httpx", handshake="reuse",
                 cookie="plain", content_type="application/x-www-form-urlencoded",
                 cgi=CGI):
        self.s, self.http, self.cgi = s, http, cgi
        self.auth = Digest(user, password, style=style)
        self.handshake, self.cookie_style, self.content_type = handshake, cookie, content_type
        self.session: str | None = None
        self.raw_cookie: str | None = None

    def _headers(self) -> dict[str, str]:
        h = {}
        if self.session and self.cookie_style:
            h["Cookie"] = {"plain": f"session={self.session}",
                           "pyppc": f"session={self.session}; Cookie={self.session}",
                           "raw": self.raw_cookie}[self.cookie_style]
        return h

    def _keep(self, r) -> None:
        v = cookie_of(r)
        if v:
            self.session = v
            self.raw_cookie = r.headers.getall("Set-Cookie")[0]

    async def get(self):
        r = await digest_request(self.http, "GET", self.s.url(self.cgi), self.auth,
                                 headers=self._headers(),
                                 preemptive=self.handshake == "reuse")
        self._keep(r)
        return r, await r.text()

    async def post(self, fields, *, session_cookie_only=False):
        body = fields if isinstance(fields, (str, bytes)) else urlencode(fields)
        headers = self._headers()
        if session_cookie_only and self.session:
            headers["Cookie"] = f"session={self.session}"
        kw = {}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        else:
            kw["skip_auto_headers"] = ["Content-Type"]
        r = await digest_request(self.http, "POST", self.s.url(self.cgi), self.auth,
                                 data=body.encode() if isinstance(body, str) else body,
                                 headers=headers, preemptive=self.handshake == "reuse", **kw)
        self._keep(r)
        return r, await r.read()


def doc(text: str):
    return lxml.html.fromstring(text)


def said(body: bytes | str) -> str:
    """What a page says (entities decoded), as a person reads it."""
    text = body.decode() if isinstance(body, bytes) else body
    return " ".join(doc(text).text_content().split())


def options(text: str, select_id: str) -> list[tuple[str, str]]:
    return [(o.get("value"), o.text)
            for o in doc(text).xpath(f'//select[@id="{select_id}"]/option')]


def value_rows(text: str) -> list[dict[str, str]]:
    """The rows of #metervalue as py-ppc-smgw/Lutarym read them (cell ids)."""
    out = []
    for tr in doc(text).xpath('//table[@id="metervalue"]/tr'):
        if not re.fullmatch(r"table_metervalues_line\d+", tr.get("id") or ""):
            continue
        out.append({td.get("id")[len("table_metervalues_col_"):]: td.text for td in tr})
    return out


def extract_xml(blob: bytes, end: bytes = b"</ns1:object>") -> bytes:
    """What the exporters and TRON4R's extractor do: from the first <?xml to the root's end."""
    a = blob.index(b"<?xml")
    b = blob.index(end, a) + len(end)
    return blob[a:b]


def openssl_verify(tmp: Path, blob: bytes, root_pem: bytes, *, noverify=False) -> bytes:
    f, out, ca = tmp / "x.cms", tmp / "x.out", tmp / "root.pem"
    f.write_bytes(blob)
    ca.write_bytes(root_pem)
    cmd = ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(f), "-out", str(out)]
    cmd += ["-noverify"] if noverify else ["-CAfile", str(ca), "-purpose", "any"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return out.read_bytes()


def check_cms(tmp: Path, blob: bytes, keystore) -> bytes:
    content, signer, ctype = cms.verify(blob, keystore.roots)
    assert ctype == "data"
    assert signer.fingerprint(signer.signature_hash_algorithm) == keystore.sig.cert.fingerprint(
        keystore.sig.cert.signature_hash_algorithm)
    assert openssl_verify(tmp, blob, keystore.root.public_bytes(Encoding.PEM)) == content
    # one primitive OCTET STRING holds the XML (py-ppc-smgw fails on a streamed encoding)
    from asn1crypto import cms as acms

    info = acms.ContentInfo.load(blob, strict=True)
    assert info["content"]["encap_content_info"]["content"].method == 0
    return content


def kwh(party, obis, k) -> str:
    return f"{Decimal(party.tenth_wh(obis, k)) / 10000:.4f}"


# ------------------------------------------------------------------ pure parts


@pytest.mark.parametrize("text, end, expect", [
    ("2026-05-14 00:00:00", False, dt.datetime(2026, 5, 14, 0, 0, 0)),
    ("2026-05-14T12:30:05", False, dt.datetime(2026, 5, 14, 12, 30, 5)),
    ("2026-05-14  12:30", False, dt.datetime(2026, 5, 14, 12, 30, 0)),
    ("2026-05-14", False, dt.datetime(2026, 5, 14)),
    ("2026-05-14", True, dt.datetime(2026, 5, 15)),
    ("2026-10-25 02:30:00", False, dt.datetime(2026, 10, 25, 2, 30)),   # ambiguous hour
])
def test_parse_ppc_time_local(text, end, expect):
    from zoneinfo import ZoneInfo

    want = int(expect.replace(tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
    assert ppc.parse_ppc_time(text, end=end) == want


@pytest.mark.parametrize("text", ["1970-01-01 00:00:00", "14.05.2026", "morgen", "2026-13-01"])
def test_parse_ppc_time_rejects(text):
    with pytest.raises(ValueError):
        ppc.parse_ppc_time(text)


def test_build_numbers_and_versions():
    assert ppc.ppc_build("0.1.0") == "30100"
    assert ppc.ppc_build("v1.2.3-rc") == "40203"
    assert int(ppc.ppc_build("0.0.1")) > 25334
    footer, rows = ppc.ppc_versions(FIRMWARE)
    assert footer == "40203-30100"
    assert rows[0][:2] == ("smgw-bootstream", "40203") and rows[1][:2] == ("smgw-services",
                                                                           "30100")
    assert rows[2:] == [tuple(c) for c in FIRMWARE]
    # the components as the gateway reports them (smgw.hanservice)
    footer, rows = ppc.ppc_versions([("SMGW-Anwendung (host)", "0.1.0", "ab" * 32),
                                     ("Messwert-Frontend (pico)", "0.4.2", "")])
    assert footer == "30402-30100"
    assert rows[1] == ("smgw-services", "30100", "ab" * 32) and rows[0][2] == "-"
    assert ppc.ppc_versions([])[0] == "00000-00000"


def test_cells_are_plain_and_ascii():
    row = H.ValueRow(" 2026-05-14 00:00:01 ", "gültig", "3344.0514", "kWh", "1",
                     "Wirkarbeit Bezug", "1-0:1.8.0", "-")
    html = H.value_table([row])
    assert html.isascii() and "<tbody" not in html
    assert cells(html, "table_metervalues_col_timestamp") == ["2026-05-14 00:00:01"]
    assert cells(html, "table_metervalues_col_status") == ["g&uuml;ltig"]


# ------------------------------------------------------------------ login page and markup


def assert_markup_rules(text: str) -> None:
    assert "<tbody" not in text
    for m in re.finditer(r"<td\b([^>]*)>([^<]*)<", text):
        attrs, content = m.groups()
        assert attrs == "" or attrs.startswith(' id="'), m.group(0)
        assert content == content.strip(), m.group(0)
    assert re.search(r'<p id="div_fwversion">\d{5}-\d{5}</p>', text)
    assert re.search(r'<p id="div_timestamp">[^<]*Letzte Synchronisation: '
                     r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', text)
    assert text.isascii()


def test_login_page(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password)
            r, text = await c.get()
            assert r.status == 200 and r.content_type == "text/html"
            set_cookies = r.headers.getall("Set-Cookie")
            assert set_cookies[0].startswith("session=") and "Domain" not in set_cookies[0]
            assert "Willkommen" in text and "Fehler" not in text
            first_input = doc(text).xpath("//input")[0]
            assert (first_input.get("type"), first_input.get("name")) == ("hidden", "tkn")
            form = doc(text).xpath('//*[@id="button_menu_zaehler"]')[0].getparent()
            assert form.xpath('input[@name="action"]')[0].get("value") == "meterform"
            assert form.xpath('input[@name="tkn"]')[0].get("value") == first_input.get("value")
            assert_markup_rules(text)
            assert r.headers["X-Frame-Options"] == "DENY"

    run(main())


# ------------------------------------------------------------------ the clients


def test_py_ppc_smgw_flow(world, tmp_path, keystore):
    """py-ppc-smgw 0.2: one nonce with nc counting up, no tkn, cookie sent as
    ``session=v; Cookie=v``, meterform -> showMeterProfile -> swversions -> exportMeterValues
    / exportMeterProfile -> logout with only the session cookie."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password, cookie="pyppc")
            r, _ = await c.get()
            assert c.session
            r, body = await c.post({"action": "meterform"})
            text = body.decode()
            assert_markup_rules(text)
            sel = doc(text).xpath('//select[@id="meterform_select_meter"]')[0]
            assert sel[0].tag == "option"
            ((mid, name),) = options(text, "meterform_select_meter")
            assert re.fullmatch(r"[0-9a-f]{32}", mid)
            parts = name.split(".")
            assert len(parts) == 3 and re.fullmatch(r"[0-9a-f]{12}", parts[0])
            assert parts[1:] == [ALICE.meter, "sm"]
            r, body = await c.post({"action": "showMeterProfile", "mid": mid})
            text = body.decode()
            assert_markup_rules(text)
            rows = value_rows(text)
            assert [x["obis"] for x in rows] == ["1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"]
            for x in rows:
                dt.datetime.strptime(x["timestamp"], "%Y-%m-%d %H:%M:%S")
                float(x["wert"])
            assert rows[0]["wert"] == kwh(ALICE, "1-0:1.8.0", 192)
            assert rows[0]["einheit"] == "kWh" and rows[0]["istvalide"] == "1"
            assert rows[0]["timestamp"] == cosem.local_text(world.capture(192))
            assert rows[2]["wert"] == f"{Decimal(12345 + 192) / 100:.2f}"
            r, body = await c.post({"action": "swversions"})
            trs = doc(body.decode()).xpath("//tr")[1:]
            comps = {tr[0].text: (tr[1].text, tr[2].text) for tr in trs if len(tr) == 3}
            assert comps["smgw-bootstream"][0] == "40203"
            assert comps["smgw-services"][0] == "30100"
            assert int(comps["smgw-bootstream"][0]) >= 24052
            assert int(comps["smgw-services"][0]) >= 25334
            day = cosem.local_text(world.grid(100))[:10]
            r, blob = await c.post({"action": "exportMeterValues", "mid": mid,
                                    "from": f"{day} 00:00:00", "to": f"{day} 12:00:00"})
            assert r.headers["Content-Disposition"] == \
                f'attachment; filename="{ALICE.meter}.sm_data.xml.cms"'
            content = check_cms(tmp_path, blob, keystore)
            xml = extract_xml(blob)
            assert content.rstrip() == xml
            root = lxml.etree.fromstring(xml)
            assert root.tag == f"{{{NS_PG}}}object"
            cap = root.find(f"{{{NS_PG}}}attributes/{{{NS_PG}}}capture_objects")
            names = [co.findtext(f"{{{NS_EXT}}}logical_name") for co in cap]
            obis = [n.split(".")[0] for n in names]
            assert obis == ["0100010800ff", "0100020800ff"]
            cols = root.find(f"{{{NS_PG}}}attributes/{{{NS_PG}}}buffer/{{{NS_PG}}}simple_data")
            values = {}
            for col in cols:
                o = obis[int(col.get("id")) - 1]
                for e in col:
                    v = int(e.findtext(f"{{{NS_EXT}}}value/{{{NS_EXT}}}long64"))
                    sc = int(e.findtext(f"{{{NS_EXT}}}scaler"))
                    assert e.findtext(f"{{{NS_EXT}}}unit") == "30"
                    t = e.findtext(f"{{{NS_EXT}}}capture_time")
                    assert t.endswith("Z") and e.findtext(f"{{{NS_EXT}}}smgw_signature")
                    values[(o, t)] = Decimal(v).scaleb(sc) / 1000
            lo = ppc.parse_ppc_time(f"{day} 00:00:00")
            hi = ppc.parse_ppc_time(f"{day} 12:00:00")
            expect = {("0100010800ff", cosem.iso_z(world.capture(k))):
                      Decimal(ALICE.tenth_wh("1-0:1.8.0", k)) / 10000
                      for k in range(193) if lo <= world.grid(k) <= hi}
            got = {k: v for k, v in values.items() if k[0] == "0100010800ff"}
            assert got == expect
            r, blob = await c.post({"action": "exportMeterProfile", "mid": mid})
            content = check_cms(tmp_path, blob, keystore)
            root = lxml.etree.fromstring(extract_xml(blob, b"</klc:container>"))
            dev = root[0]
            assert dev.tag.endswith("e_meter_device_object")
            ident = dev.xpath("//*[local-name()='device_identifier']")[0].text
            assert ident == ALICE.meter
            vals = [v.text for v in dev.xpath("//*[local-name()='value']")]
            assert vals == ["0100010800ff", "0100020800ff"]
            r, body = await c.post({"action": "logout"}, session_cookie_only=True)
            assert r.status == 200 and "abgemeldet" in body.decode()

    run(main())


def test_legacy_client_without_content_type_and_login_token(world, tmp_path):
    """The in-tree ha-ppc-smgw client: body without Content-Type, the login page's first input
    as tkn for the whole session, div_fwversion read from the meterform page."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, BOB.user, BOB.password, cookie="pyppc", content_type=None)
            r, text = await c.get()
            tkn = doc(text).xpath("//input")[0].get("value")
            r, body = await c.post(f"action=meterform&tkn={tkn}")
            text = body.decode()
            assert doc(text).xpath('//p[@id="div_fwversion"]')[0].text == "40203-30100"
            ((mid, _),) = options(text, "meterform_select_meter")
            r, body = await c.post(f"tkn={tkn}&action=showMeterProfile&mid={mid}")
            rows = value_rows(body.decode())
            assert [x["wert"] for x in rows] == [kwh(BOB, "1-0:1.8.0", 192),
                                                 kwh(BOB, "1-0:2.8.0", 192)]
            # a stale or made-up tkn is never a reason to refuse
            r, body = await c.post(f"tkn=0000&action=showMeterProfile&mid={mid}")
            assert r.status == 200 and value_rows(body.decode())

    run(main())


def test_nodered_flow(world, tmp_path):
    """node-red ppc.js: its challenge parser, no spaces and quoted qop, set-cookie[0] up to the
    first ';', reads #button_menu_zaehler's form, and the meter data as table 2 > tr."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            r = await http.get(s.url(CGI))
            assert r.status == 401
            (challenge,) = r.headers.getall("WWW-Authenticate")
            parsed = nodered_parse(challenge)
            assert parsed["qop"] == "auth" and parsed["nonce"] and parsed["realm"]
            c = Client(s, http, ALICE.user, ALICE.password, style="nodered")
            r, text = await c.get()
            assert "Willkommen" in text and "Fehler" not in text
            form = doc(text).xpath('//*[@id="button_menu_zaehler"]')[0].getparent()
            fields = {i.get("name"): i.get("value") for i in form.xpath("input[@name]")}
            r, body = await c.post(fields)
            ((mid, name),) = options(body.decode(), "meterform_select_meter")
            assert ALICE.meter in name
            r, body = await c.post({"action": "showMeterProfile", "mid": mid,
                                    "tkn": fields["tkn"]})
            page = doc(body.decode())
            assert page.xpath('//p[@id="div_fwversion"]')[0].text
            content = page.xpath('//div[@class="content"]')[0]
            tables = content.xpath("table")
            assert tables[0].get("id") == "metervalue"
            rows = tables[1].xpath("tr")
            assert rows[0][1].text == f"{ALICE.meter}.sm" and rows[6][1].text == "900"
            labels = [tr[0].text for tr in rows]
            assert labels == ["Zähler-ID", "Name", "Beschreibung", "Kommunikationstyp",
                              "Protokoll-Typ", "Protokoll-Version", "Ausleseintervall",
                              "Abfrageversuche", "Zähleradresse", "Medium"]
            # first occurrence of each cell id = the import register
            assert page.xpath('//td[@id="table_metervalues_col_obis"]')[0].text == "1-0:1.8.0"

    run(main())


def test_tron4r_flow(world, tmp_path, keystore):
    """TRON4R: a new handshake for every request (the first POST carries cookie and body), the
    fresh hidden mid of showMeterValuesForm, one day per request all on page 1, the export
    with that mid, exportLogData with an inclusive range."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password, handshake="every")
            r, text = await c.get()
            tkn = hidden(text, "tkn")
            r, body = await c.post({"action": "meterform", "tkn": tkn})
            ((mid, name),) = options(body.decode(), "meterform_select_meter")
            assert name.removesuffix(".sm").split(".")[-1] == ALICE.meter
            r, body = await c.post({"action": "showMeterValuesForm", "mid": mid, "tkn": tkn})
            form = doc(body.decode()).xpath('//form[@name="input_metervalues"]')[0]
            mid_input = form.xpath('.//input[@name="mid"]')[0]
            assert mid_input.get("type") == "hidden"
            mid2 = mid_input.get("value")
            assert mid2 != mid
            # yesterday: D 00:00:00 .. D+1 00:15:00
            from zoneinfo import ZoneInfo

            zone = ZoneInfo(TZ)
            today = dt.datetime.fromtimestamp(world.end_ms / 1000, zone).date()
            d = today - dt.timedelta(days=1)
            a = int(dt.datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)
            b = int(dt.datetime(today.year, today.month, today.day, 0, 15,
                                tzinfo=zone).timestamp() * 1000)
            r, body = await c.post({"action": "showMeterValues", "mid": mid2, "tkn": tkn,
                                    "from": f"{d} 00:00:00", "to": f"{today} 00:15:00"})
            text = body.decode()
            assert "Seite 1" in text
            rows = value_rows(text)
            ks = [k for k in range(192, -1, -1) if a <= world.grid(k) <= b]
            assert len(rows) == 2 * len(ks) and len(ks) >= 90     # 23-hour days too
            assert [x["timestamp"] for x in rows[::2]] == [cosem.local_text(world.grid(k))
                                                          for k in ks]
            assert [x["obis"] for x in rows[:2]] == ["1-0:1.8.0", "1-0:2.8.0"]
            assert [x["wert"] for x in rows[::2]] == [kwh(ALICE, "1-0:1.8.0", k) for k in ks]
            assert all(re.fullmatch(r"[0-9a-f]{128}", x["sign"]) for x in rows)
            assert not doc(text).xpath('//*[@id="table_metervalues_button_nextpage"]')
            r, blob = await c.post({"action": "exportMeterValues", "mid": mid2, "tkn": tkn,
                                    "from": f"{d} 00:00:00", "to": f"{today} 00:15:00"})
            assert "filename=" in r.headers["Content-Disposition"]
            check_cms(tmp_path, blob, keystore)
            # the consumer log: boundaries inclusive
            log = s.data.consumer_log(ALICE.consumer, limit=5)
            first, last = log.entries[0], log.entries[2]
            r, blob = await c.post({"action": "exportLogData", "tkn": tkn,
                                    "from": cosem.local_text(first.ts_ms),
                                    "to": cosem.local_text(last.ts_ms)})
            content = check_cms(tmp_path, blob, keystore)
            root = lxml.etree.fromstring(content)
            numbers = [int(x.text) for x in root.iter(f"{{{NS_EXT}}}record_number")]
            assert numbers == [e.seq for e in log.entries[:3]]

    run(main())


def test_openhab_flow(world, tmp_path):
    """openHAB: the raw Set-Cookie as Cookie, text/plain bodies, the meterform mid used for
    showMeterValues with from = to = today's date, the first row is today's newest value."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, BOB.user, BOB.password, cookie="raw",
                       content_type="text/plain;charset=UTF-8")
            await c.get()
            assert c.raw_cookie.startswith("session=") and ";" in c.raw_cookie
            r, body = await c.post({"action": "meterform"})
            ((mid, _),) = options(body.decode(), "meterform_select_meter")
            today = cosem.local_text(world.now_ms())[:10]
            r, body = await c.post({"action": "showMeterValues", "mid": mid, "from": today,
                                    "to": today})
            rows = value_rows(body.decode())
            assert rows[0]["timestamp"] == cosem.local_text(world.end_ms)
            assert rows[0]["wert"] == kwh(BOB, "1-0:1.8.0", 192)
            assert f"{rows[0]['wert']} {rows[0]['einheit']}".endswith(" kWh")
            # the raw cookie kept the session: no new one was set
            assert cookie_of(r) is None

    run(main())


def test_exporter_flow_without_login_page(world, tmp_path, keystore):
    """The bash/Python exporter: curl --digest (401 first every time), POST meterform with no
    GET and no cookie first, mid via XPath, raw spaces in from/to, openssl -noverify, cut at
    </ns1:object>, ASCII only."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password, style="curl", handshake="every")
            r, body = await c.post({"action": "meterform"})
            assert r.status == 200 and c.session, "the first POST starts the session"
            page = doc(body.decode())
            tkn = page.xpath('//form[@id="form_meterform"]//input[@name="tkn"]')[0].get("value")
            opt = page.xpath('//select[@name="mid"]/option')[0]
            mid, meter = opt.get("value"), opt.text.split(".")[1]
            assert meter == ALICE.meter
            r, body = await c.post({"action": "meterprofile", "mid": mid, "tkn": tkn})
            assert r.status == 200
            r, body = await c.post({"action": "showMeterValuesForm", "mid": mid, "tkn": tkn})
            mid = doc(body.decode()).xpath(
                "//form[@name='input_metervalues']//input[@name='mid']")[0].get("value")
            day = cosem.local_text(world.grid(150))[:10]
            raw = (f"tkn={tkn}&action=exportMeterValues&mid={mid}"
                   f"&from={day} 06:00:00&to={day} 08:00:00")
            r, blob = await c.post(raw)
            out = openssl_verify(tmp_path, blob, b"", noverify=True)
            xml = extract_xml(blob)
            assert out.rstrip() == xml and xml.isascii()
            assert xml.count(b"<ns1:entry_gateway_signed") == 2 * 9

    run(main())


def test_time_quirks_limits_and_empty_ranges(world, tmp_path, monkeypatch):
    monkeypatch.setattr(ppc, "MAX_EXPORT_RECORDS", 300)   # the world holds 386 values a meter

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password)
            await c.get()
            r, body = await c.post({"action": "meterform"})
            ((mid, _),) = options(body.decode(), "meterform_select_meter")
            day = cosem.local_text(world.grid(150))[:10]
            results = []
            for sep in ("+", "%20", " "):
                raw = (f"action=showMeterValues&mid={mid}&from={day}{sep}06:00:00"
                       f"&to={day}{sep}07:00:00")
                r, body = await c.post(raw)
                results.append([x["timestamp"] for x in value_rows(body.decode())])
            assert results[0] == results[1] == results[2] and len(results[0]) == 2 * 5
            for bad in ("1970-01-01 00:00:00", "gestern"):
                r, body = await c.post({"action": "showMeterValues", "mid": mid, "from": bad,
                                        "to": f"{day} 07:00:00"})
                assert r.status == 200 and f"Ungültige Zeitangabe {bad}" in said(body)
            # more records than allowed: the gateway's refusal text instead of CMS
            r, body = await c.post({"action": "exportMeterValues", "mid": mid,
                                    "from": cosem.local_text(world.start_ms),
                                    "to": cosem.local_text(world.end_ms)})
            text = body.decode()
            assert r.status == 200 and "Es sind nur 300 erlaubt" in text
            assert "386 Datens" in text
            r, body = await c.post({"action": "exportMeterValues", "mid": mid,
                                    "from": "2001-01-01 00:00:00", "to": "2001-01-02 00:00:00"})
            assert body.decode() == "Keine Daten vorhanden."
            r, body = await c.post({"action": "showMeterValues", "mid": mid,
                                    "from": "2001-01-01", "to": "2001-01-02"})
            text = body.decode()
            assert "Keine Daten vorhanden." in text
            assert doc(text).xpath('//table[@id="metervalue"]')
            assert value_rows(text) == []
            r, body = await c.post({"action": "neuesFeature"})
            assert "Fehler" in body.decode() and "Unbekannte Aktion neuesFeature" in \
                body.decode()

    run(main())


def test_paging_of_long_ranges(world, tmp_path, monkeypatch):
    monkeypatch.setattr(ppc, "PAGE_ROWS", 300)    # two days are 386 rows

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password)
            await c.get()
            r, body = await c.post({"action": "meterform"})
            ((mid, _),) = options(body.decode(), "meterform_select_meter")
            rng = {"from": cosem.local_text(world.start_ms), "to": cosem.local_text(world.end_ms)}
            r, body = await c.post({"action": "showMeterValues", "mid": mid, **rng})
            page1 = doc(body.decode())
            assert len(value_rows(body.decode())) == ppc.PAGE_ROWS
            nxt = page1.xpath('//*[@id="table_metervalues_button_nextpage"]')[0].getparent()
            fields = {i.get("name"): i.get("value") for i in nxt.xpath("input[@name]")}
            assert fields["page"] == "2" and fields["action"] == "showMeterValues"
            r, body = await c.post(fields)
            rows = value_rows(body.decode())
            assert len(rows) == 2 * 193 - ppc.PAGE_ROWS
            assert rows[-1]["timestamp"] == cosem.local_text(world.start_ms)

    run(main())


def test_tariff_profiles_and_tarification(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password)
            r, text = await c.get()
            tkn = hidden(text, "tkn")
            r, body = await c.post({"action": "tariffform", "tkn": tkn})
            opts = dict((name, tid) for tid, name in options(body.decode(),
                                                             "tarifform_select_profile"))
            assert set(opts) == {ALICE.taf1, ALICE.taf7}
            r, body = await c.post({"action": "showTariffProfile", "tid": opts[ALICE.taf1]})
            page = doc(body.decode())
            info = {tr[0].text: tr[1].text for tr in
                    page.xpath('//table[@id="table_tariffprofile"]/tr')}
            assert info["TAF-Typ"] == "TAF1" and info["Ende Validierungsperiode"] == "unbegrenzt"
            assert info["Zählpunktbezeichnung"] == ALICE.usage_point
            assert page.xpath('//td[@id="table_tafvalues_col_domain"]')[0].text == \
                f"{ALICE.meter}.sm"
            r, body = await c.post({"action": "showTarificationForm", "tid": opts[ALICE.taf1]})
            tid2 = doc(body.decode()).xpath('//input[@name="tid"]')[0]
            assert tid2.get("type") == "hidden" and tid2.get("value") != opts[ALICE.taf1]
            m0, m1 = world.billing_period
            r, body = await c.post({"action": "showTarification", "tid": tid2.get("value"),
                                    "from": cosem.local_text(m1), "to": cosem.local_text(m1)})
            page = doc(body.decode())
            regs = {tr.xpath('td[@id="table_tafregister_col_obis"]')[0].text:
                    tr.xpath('td[@id="table_tafregister_col_wert"]')[0].text
                    for tr in page.xpath('//table[@id="tarification"]/tr[@id]')}
            k0, k1 = (m0 - world.start_ms) // GRID_MS, (m1 - world.start_ms) // GRID_MS
            used = Decimal(ALICE.tenth_wh("1-0:1.8.0", k1) - ALICE.tenth_wh("1-0:1.8.0", k0))
            assert regs["1-0:1.8.1"] == f"{used / 10000:.4f}"

    run(main())


def test_selftest_logout_and_handles_per_session(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password)
            await c.get()
            r, body = await c.post({"action": "selftest"})
            assert r.status == 200 and "Selbsttest OK." in body.decode()
            r, body = await c.post({"action": "selftest"})
            assert r.status == 200 and "nicht gestartet" in body.decode()
            r, body = await c.post({"action": "meterform"})
            ((mid1, _),) = options(body.decode(), "meterform_select_meter")
            old = c.session
            r, body = await c.post({"action": "logout"})
            assert "abgemeldet" in body.decode()
            assert r.headers.getall("Set-Cookie")[0].startswith("session=;")
            c.session = old        # a client that keeps the old cookie
            r, body = await c.post({"action": "meterform"})
            assert r.status == 200 and c.session != old
            ((mid2, _),) = options(body.decode(), "meterform_select_meter")
            assert mid2 != mid1
            r, body = await c.post({"action": "showMeterProfile", "mid": mid1})
            assert r.status == 403 and "Unerlaubter Zugriff" in body.decode()

    run(main())


def test_no_access_while_the_han_is_switched_off(world, tmp_path):
    """Minimal operation switches the HAN access off (seed 000 §2.6): the consumer CGI says so
    with 503, the technician's diagnosis pages stay."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, ALICE.user, ALICE.password)
            t = Client(s, http, TECH_USER, TECH_PASSWORD, cgi=TECH)
            for state, status in (("restricted", 200), ("minimal", 503), ("ceased", 503),
                                  ("normal", 200)):
                s.info["opstate"] = {"state": state}
                r, text = await c.get()
                assert r.status == status, state
                if status == 503:
                    assert "Kein Zugriff" in said(text) and ALICE.meter not in text
                r, text = await t.get()
                assert r.status == 200
                r, body = await t.post({"action": "sysinfo"})
                assert r.status == 200

    run(main())


# ------------------------------------------------------------------ technician


def test_technician_pages(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, TECH_USER, TECH_PASSWORD, cgi=TECH)
            r, text = await c.get()
            assert r.status == 200 and c.session
            for label in ("Logs", "Systeminformationen", "Selbsttest", "Abmelden"):
                assert f'value="{label}"' in text
            assert_markup_rules(text)
            r, body = await c.post({"action": "logs"})
            assert 'name="from"' in body.decode()
            rng = {"from": cosem.local_text(world.start_ms - 86_400_000),
                   "to": cosem.local_text(world.now_ms())}
            r, body = await c.post({"action": "showLogs", **rng})
            text = body.decode()
            rows = doc(text).xpath('//table[@id="table_logs"]/tr[@id]')
            assert len(rows) == ppc.TECH_PAGE_ROWS and "Seite 1" in text
            assert {tr[4].text for tr in rows} <= {"erfolgreich", "fehlgeschlagen"}
            nxt = doc(text).xpath('//*[@id="table_logs_button_nextpage"]')[0].getparent()
            r, body = await c.post({i.get("name"): i.get("value")
                                    for i in nxt.xpath("input[@name]")})
            assert "Seite 2" in body.decode()
            rows2 = doc(body.decode()).xpath('//table[@id="table_logs"]/tr[@id]')
            assert rows2 and rows2[0][0].text >= rows[-1][0].text
            r, body = await c.post({"action": "sysinfo"})
            info = {tr[0].text: tr[1].text for tr in
                    doc(body.decode()).xpath('//table[@id="table_systeminfo"]/tr')}
            assert info["SMGW Id"] == "eopn0000000001.sm" and info["Aktuelle Uhrzeit ist"]
            r, body = await c.post({"action": "selftest"})
            assert "Selbsttest OK." in body.decode()
            pages = [text, body.decode()]
            for action in ("logs", "sysinfo", "selftest"):
                pages.append((await c.post({"action": action}))[1].decode())
            for page in pages:   # no measured data for technicians
                for party in (ALICE, BOB):
                    assert party.meter not in page and party.usage_point not in page
                assert "kWh" not in page and "Wirkarbeit" not in page
            r, body = await c.post({"action": "logout"})
            assert "abgemeldet" in body.decode()

    run(main())


def test_technician_error_messages(world, tmp_path, keystore):
    """Seed 000 §6.2, each message for its cause."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            c = Client(s, http, TECH_USER, TECH_PASSWORD, cgi=TECH)
            await c.get()
            r, body = await c.post({"action": "showLogs"})
            assert "Keine Daten vorhanden." in body.decode()
            r, body = await c.post({"action": "showLogs", "from": "2026-02-30 00:00:00",
                                    "to": "2026-03-01 00:00:00"})
            assert "Ungültige Zeitangabe 2026-02-30 00:00:00" in said(body)
            r, body = await c.post({"action": "showLogs", "from": "2026-03-01 00:00:00",
                                    "to": "bald"})
            assert "Ungültige Zeitangabe bald" in said(body)
            r, body = await c.post({"action": "zeigAlles"})
            assert "Unbekannte Aktion zeigAlles" in body.decode()
            # a POST without the session cookie
            bare = Client(s, http, TECH_USER, TECH_PASSWORD, cgi=TECH, cookie=None)
            r, body = await bare.post({"action": "sysinfo"})
            assert "Invalide Session" in body.decode()
            # the logbooks gone, empty, broken
            rng = {"action": "showLogs", "from": "2020-01-01", "to": "2030-01-01"}
            books = s.data.logbooks
            try:
                s.data.logbooks = None
                r, body = await c.post(rng)
                assert "Keine Verbindung zum Persistenzdienst" in body.decode()
                empty = Logbooks.open(tmp_path / "empty" / "logs.db", "EOPN0000000001",
                                      Signer.generate("EOPN0000000001"))
                s.data.logbooks = empty
                r, body = await c.post(rng)
                assert "Keine Einträge vorhanden" in said(body)
                empty.close()
                broken_path = tmp_path / "broken" / "logs.db"
                broken = Logbooks.open(broken_path, "EOPN0000000001",
                                       Signer.generate("EOPN0000000001"))
                broken._c().execute("DROP TABLE system_log")
                s.data.logbooks = broken
                r, body = await c.post(rng)
                assert "Datenbankfehler" in body.decode()
                broken.close()
            finally:
                s.data.logbooks = books
            # wrong password, and an ended session: close the window and log in again
            wrong = Client(s, http, TECH_USER, "falsch", cgi=TECH)
            r, _ = await wrong.get()
            assert r.status == 401 and "WWW-Authenticate" in r.headers
            assert "Sie müssen das Fenster schließen und sich erneut anmelden" in said(
                await r.text())
            old = c.session
            await c.post({"action": "logout"})
            # the browser still sends the old cookie with its cached credentials
            r = await http.post(s.url(TECH), data="action=sysinfo", headers={
                "Cookie": f"session={old}", "Authorization": c.auth.header("POST", TECH)})
            assert r.status == 401 and "WWW-Authenticate" in r.headers
            assert "Sie müssen das Fenster schließen und sich erneut anmelden" in said(
                await r.text())

    run(main())


# ------------------------------------------------------------------ roles


def test_role_matrix(world, tmp_path):
    """Every action x {Alice, Bob, technician, anonymous} x own/foreign handles."""
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            day = cosem.local_text(world.grid(150))[:10]
            rng = {"from": f"{day} 06:00:00", "to": f"{day} 07:00:00"}

            async def handles(c):
                await c.get()
                _, body = await c.post({"action": "meterform"})
                ((mid, _),) = options(body.decode(), "meterform_select_meter")
                _, body = await c.post({"action": "tariffform"})
                tids = {name: tid for tid, name in options(body.decode(),
                                                           "tarifform_select_profile")}
                return mid, tids

            clients = {
                "alice": Client(s, http, ALICE.user, ALICE.password),
                "bob": Client(s, http, BOB.user, BOB.password),
                "tech": Client(s, http, TECH_USER, TECH_PASSWORD),
            }
            own = {"alice": await handles(clients["alice"]), "bob": await handles(clients["bob"])}
            owner_of = {"alice": ALICE, "bob": BOB}

            def actions(mid, tids, party):
                tid = tids[party.taf7]
                return [
                    {"action": "meterform"}, {"action": "meterprofile", "mid": mid},
                    {"action": "showMeterProfile", "mid": mid},
                    {"action": "showMeterValuesForm", "mid": mid},
                    {"action": "showMeterValues", "mid": mid, **rng},
                    {"action": "exportMeterValues", "mid": mid, **rng},
                    {"action": "exportMeterProfile", "mid": mid},
                    {"action": "exportLogData", "from": "2000-01-01", "to": "2099-01-01"},
                    {"action": "tariffform"}, {"action": "showTariffProfile", "tid": tid},
                    {"action": "showTarificationForm", "tid": tid},
                    {"action": "showTarification", "tid": tid, **rng},
                    {"action": "swversions"}, {"action": "log", **rng},
                ]

            for who in ("alice", "bob", "tech", "anon"):
                for owner in ("alice", "bob"):
                    party = owner_of[owner]
                    mid, tids = own[owner]
                    for fields in actions(mid, tids, party):
                        if who == "anon":
                            r = await http.post(s.url(CGI), data=urlencode(fields))
                            assert r.status == 401, fields
                            continue
                        r, body = await clients[who].post(fields)
                        if who == "tech":
                            assert r.status == 403 and b"Unerlaubter Zugriff" in body, fields
                            continue
                        uses_handle = "mid" in fields or "tid" in fields
                        if who != owner and uses_handle:
                            assert r.status == 403, (who, fields)
                            assert b"Unerlaubter Zugriff" in body
                        else:
                            assert r.status == 200, (who, fields, body[:300])
                        # never the other consumer's meter, profiles or log
                        me = ALICE if who == "alice" else BOB
                        them = BOB if me is ALICE else ALICE
                        assert them.meter.encode() not in body, (who, fields)
                        assert them.taf7.encode() not in body, (who, fields)
                        if "mid" in fields and who == owner and fields["action"] in (
                                "showMeterProfile", "showMeterValues"):
                            assert me.meter.encode() in body
            # the technician CGI: only the technician
            for who in ("alice", "bob"):
                c = Client(s, http, owner_of[who].user, owner_of[who].password, cgi=TECH)
                r, _ = await c.get()
                assert r.status == 403
                for fields in ({"action": "logs"}, {"action": "sysinfo"},
                               {"action": "showLogs", "from": "2000-01-01",
                                "to": "2099-01-01"}, {"action": "selftest"}):
                    r, body = await c.post(fields)
                    assert r.status == 403 and b"table_logs_col" not in body, (who, fields)
            r = await http.get(s.url(TECH))
            assert r.status == 401

    run(main())
