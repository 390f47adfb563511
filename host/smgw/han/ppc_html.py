"""The pages of the PPC-style HAN CGI (:mod:`smgw.han.ppc`), as pure functions of what they
show. The markup follows what the existing PPC clients parse (``../shared/design/
han-clients.md`` §A.6), so it is deliberately plain:

* ``id`` is the first attribute of every ``<td>`` that has one; a cell holds plain text with no
  surrounding whitespace and no nested tags (BeautifulSoup ``.string``, ``>([^<]*)<``);
* no ``<tbody>`` (node-red selects ``table:nth-of-type(2) > tr``);
* every page ends with ``<div id="footer">`` holding ``<p id="div_fwversion">`` (``<bootstream>-
  <services>``) and ``<p id="div_timestamp">`` (``Letzte Synchronisation: YYYY-MM-DD HH:MM:SS``);
* the first ``<input>`` of every page is the hidden ``tkn`` of the menu; the menu form of
  ``id="button_menu_zaehler"`` also holds ``action=meterform``;
* main content in ``<div class="content">``;
* ASCII only: German letters as entities (``Z&auml;hler``), so byte-level tools work too.

No script and no inline style (the HAN server sends ``Content-Security-Policy: default-src
'self'``); buttons that pick an action are ``<button name="action" value=...>`` (the form's
hidden ``action`` comes first, the button's value last; :mod:`smgw.han.ppc` takes the last).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CONSUMER_CGI",
    "CONSUMER_MENU",
    "TECH_CGI",
    "TECH_MENU",
    "ValueRow",
    "esc",
    "layout",
    "message",
]

CONSUMER_CGI = "/cgi-bin/hanservice.cgi"
TECH_CGI = "/cgi-bin/hanservicetech.cgi"

# (action, button id, label)
CONSUMER_MENU = (("meterform", "button_menu_zaehler", "Zähler"),
                 ("tariffform", "button_menu_tarife", "Tarifprofile"),
                 ("log", "button_menu_log", "Logbuch"),
                 ("swversions", "button_menu_software", "Software"),
                 ("selftest", "button_menu_selbsttest", "Selbsttest"),
                 ("logout", "button_menu_abmelden", "Abmelden"))
TECH_MENU = (("logs", "button_menu_logs", "Logs"),
             ("sysinfo", "button_menu_systeminfo", "Systeminformationen"),
             ("selftest", "button_menu_selbsttest", "Selbsttest"),
             ("logout", "button_menu_abmelden", "Abmelden"))

_NAMED = {"ä": "&auml;", "ö": "&ouml;", "ü": "&uuml;", "Ä": "&Auml;", "Ö": "&Ouml;",
          "Ü": "&Uuml;", "ß": "&szlig;", "€": "&euro;", "°": "&deg;", "–": "&ndash;",
          "„": "&bdquo;", "“": "&ldquo;", "Ω": "&Omega;", "³": "&sup3;", "µ": "&micro;"}


def esc(text: object) -> str:
    """Text for HTML: escaped, whitespace-trimmed, non-ASCII as entities."""
    s = html.escape(str(text).strip(), quote=True)
    if s.isascii():
        return s
    return "".join(c if c.isascii() else _NAMED.get(c, f"&#{ord(c)};") for c in s)


def _td(cell_id: str | None, text: object) -> str:
    if cell_id:
        return f'<td id="{cell_id}">{esc(text)}</td>'
    return f"<td>{esc(text)}</td>"


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{name}" value="{esc(value)}">'


def _form(cgi: str, tkn: str, action: str, fields: Sequence[tuple[str, str]] = (),
          *, name: str = "input", form_id: str | None = None) -> str:
    """Start of a POST form with the hidden tkn and action (close with ``</form>``)."""
    fid = f'id="{form_id}" ' if form_id else ""
    parts = [f'<form {fid}name="{name}" action="{cgi}" method="post">', _hidden("tkn", tkn),
             _hidden("action", action)]
    parts += [_hidden(k, v) for k, v in fields]
    return "".join(parts)


def _button(button_id: str, action: str, label: str) -> str:
    return (f'<button type="submit" id="{button_id}" name="action" value="{action}">'
            f"{esc(label)}</button>")


def layout(*, cgi: str, tkn: str, title: str, content: str, fwversion: str, sync: str,
           menu: Sequence[tuple[str, str, str]], heading: str = "Smart Meter Gateway") -> str:
    """A whole page: header, the menu (small forms, the first input is the tkn), the content
    and the footer."""
    forms = []
    for i, (action, button_id, label) in enumerate(menu):
        forms.append(
            f'<form name="{"menu" if i == 0 else "menu_" + action}" action="{cgi}" '
            f'method="post">{_hidden("tkn", tkn)}{_hidden("action", action)}'
            f'<input type="submit" id="{button_id}" value="{esc(label)}"></form>')
    return (
        "<!DOCTYPE html>\n"
        '<html lang="de">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(heading)} - {esc(title)}</title>\n</head>\n<body>\n"
        f'<div id="header"><p id="div_headline">{esc(heading)}</p></div>\n'
        f'<div id="menu">\n' + "\n".join(forms) + "\n</div>\n"
        f'<div class="content">\n{content}\n</div>\n'
        f'<div id="footer"><p id="div_fwversion">{esc(fwversion)}</p>'
        f'<p id="div_timestamp">(Letzte Synchronisation: {esc(sync)})</p></div>\n'
        "</body>\n</html>\n")


def message(title: str, text: str, *, headline_id: str = "headline_meldung",
            detail: str | None = None) -> str:
    """Content of a page that only says something (results, refusals, error messages)."""
    out = f'<h1 id="{headline_id}">{esc(title)}</h1>\n<p id="div_meldung">{esc(text)}</p>'
    if detail:
        out += f'\n<p id="div_hinweis">{esc(detail)}</p>'
    return out


# ------------------------------------------------------------------ consumer pages


def welcome(*, account: str, consumer: str, gateway_id: str, time_text: str,
            time_valid: bool) -> str:
    """The login page (must say Willkommen and must not contain the word for error)."""
    rows = [("SMGW-ID", f"{gateway_id.lower()}.sm"), ("Benutzer", account),
            ("Letztverbraucher", consumer),
            ("Systemzeit", f"{time_text} ({'gültig' if time_valid else 'ungültig'})")]
    table = "\n".join(f"<tr>{_td(None, k)}{_td(None, v)}</tr>" for k, v in rows)
    return ('<h1 id="headline_willkommen">Willkommen</h1>\n'
            '<p id="div_willkommen">Willkommen an der HAN-Schnittstelle Ihres Smart Meter '
            'Gateways. W&auml;hlen Sie oben einen Men&uuml;punkt.</p>\n'
            f'<table id="table_smgwinfo">\n{table}\n</table>')


def meterform(*, cgi: str, tkn: str, meters: Sequence[tuple[str, str]],
              selected: str | None = None) -> str:
    """The meter selection: ``meters`` = (mid, logical device name ``<hex>.<meter>.sm``)."""
    out = ['<h1 id="headline_zaehler">Z&auml;hler</h1>',
           _form(cgi, tkn, "meterprofile", form_id="form_meterform")]
    if meters:
        opts = "".join(
            f'<option value="{esc(mid)}"{" selected" if mid == selected else ""}>'
            f"{esc(name)}</option>" for mid, name in meters)
        out.append(f'<select name="mid" id="meterform_select_meter">{opts}</select>')
        out.append(_button("form_meterform_button_zaehlerprofil", "showMeterProfile",
                           "Zählerprofil"))
        out.append(_button("form_meterform_button_zaehlerstand", "showMeterValuesForm",
                           "Zählerstand"))
    else:
        out.append('<p id="div_meldung">Keine Z&auml;hler vorhanden.</p>')
    out.append("</form>")
    return "\n".join(out)


@dataclass(frozen=True)
class ValueRow:
    """One row of the ``#metervalue`` table (all texts as shown)."""

    timestamp: str      # local YYYY-MM-DD HH:MM:SS
    status: str         # gültig / ungültig
    value: str          # decimal with a dot
    unit: str
    valid: str          # 1 valid, 2 invalid, 3 not present
    name: str
    obis: str           # A-B:C.D.E
    sign: str           # signature hex or "-"


_VALUE_HEADER = ("<tr><th>Zeitstempel</th><th>Status</th><th>Wert</th><th>Einheit</th>"
                 "<th>G&uuml;ltig</th><th>Name</th><th>OBIS</th><th>Signatur</th></tr>")


def value_table(rows: Sequence[ValueRow]) -> str:
    lines = ['<table id="metervalue">', _VALUE_HEADER]
    for n, r in enumerate(rows, start=1):
        lines.append(
            f'<tr id="table_metervalues_line{n}">'
            + _td("table_metervalues_col_timestamp", r.timestamp)
            + _td("table_metervalues_col_status", r.status)
            + _td("table_metervalues_col_wert", r.value)
            + _td("table_metervalues_col_einheit", r.unit)
            + _td("table_metervalues_col_istvalide", r.valid)
            + _td("table_metervalues_col_name", r.name)
            + _td("table_metervalues_col_obis", r.obis)
            + _td("table_metervalues_col_sign", r.sign) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def meter_profile(*, meter_name: str, rows: Sequence[ValueRow],
                  meta: Sequence[tuple[str, str]]) -> str:
    """Zählerprofil: the current values (first table) and the meter's data (the second table
    directly in the content, label/value rows)."""
    meta_rows = "\n".join(f"<tr>{_td(None, k)}{_td(None, v)}</tr>" for k, v in meta)
    return (f'<h1 id="headline_zaehlerprofil">Z&auml;hlerprofil {esc(meter_name)}</h1>\n'
            + value_table(rows) + "\n"
            + ("" if rows else '<p id="div_meldung">Keine Daten vorhanden.</p>\n')
            + f'<table id="table_meterinfo">\n{meta_rows}\n</table>')


def swversions(components: Sequence[tuple[str, str, str]]) -> str:
    """The firmware table: the header row is the first ``<tr>`` of the page, every other row
    has exactly three cells."""
    rows = "\n".join(f"<tr>{_td('table_swversions_col_komponente', c)}"
                     f"{_td('table_swversions_col_version', v)}"
                     f"{_td('table_swversions_col_pruefsumme', h)}</tr>"
                     for c, v, h in components)
    return ('<h1 id="headline_software">Softwareversionen</h1>\n<table id="table_swversions">\n'
            "<tr><th>Komponente</th><th>Version</th><th>Pr&uuml;fsumme</th></tr>\n"
            f"{rows}\n</table>")


def meter_values_form(*, cgi: str, tkn: str, mid: str, meter_name: str, from_text: str,
                      to_text: str) -> str:
    return "\n".join([
        f'<h1 id="headline_zaehlerstand">Z&auml;hlerstand {esc(meter_name)}</h1>',
        _form(cgi, tkn, "showMeterValues", [("mid", mid)], name="input_metervalues",
              form_id="form_metervalues"),
        '<label for="metervalues_from">von (JJJJ-MM-TT hh:mm:ss)</label> '
        f'<input type="text" id="metervalues_from" name="from" value="{esc(from_text)}">',
        '<label for="metervalues_to">bis (JJJJ-MM-TT hh:mm:ss)</label> '
        f'<input type="text" id="metervalues_to" name="to" value="{esc(to_text)}">',
        _button("form_metervalues_button_anzeigen", "showMeterValues", "Anzeigen"),
        _button("form_metervalues_button_export", "exportMeterValues", "Exportieren"),
        "</form>"])


def _pager(*, cgi: str, tkn: str, action: str, fields: Sequence[tuple[str, str]], page: int,
           more: bool, prefix: str) -> str:
    out = []
    if page > 1:
        out.append(_form(cgi, tkn, action, [*fields, ("page", str(page - 1))],
                         name=f"{prefix}_prev")
                   + f'<input type="submit" id="{prefix}_button_prevpage" value="Zur&uuml;ck">'
                   "</form>")
    if more:
        out.append(_form(cgi, tkn, action, [*fields, ("page", str(page + 1))],
                         name=f"{prefix}_next")
                   + f'<input type="submit" id="{prefix}_button_nextpage" value="Weiter">'
                   "</form>")
    return "\n".join(out)


def meter_values(*, cgi: str, tkn: str, mid: str, meter_name: str, from_text: str,
                 to_text: str, page: int, rows: Sequence[ValueRow], more: bool) -> str:
    """Zählerstand: the history, newest first, paged."""
    parts = [f'<h1 id="headline_zaehlerstand">Z&auml;hlerstand {esc(meter_name)}</h1>',
             f'<p id="metervalues_range">Von {esc(from_text)} bis {esc(to_text)}, '
             f"Seite {page}</p>",
             value_table(rows)]
    if not rows:
        parts.append('<p id="div_meldung">Keine Daten vorhanden.</p>')
    parts.append(_pager(cgi=cgi, tkn=tkn, action="showMeterValues",
                        fields=[("mid", mid), ("from", from_text), ("to", to_text)],
                        page=page, more=more, prefix="table_metervalues"))
    return "\n".join(p for p in parts if p)


def tariff_form(*, cgi: str, tkn: str, profiles: Sequence[tuple[str, str]]) -> str:
    out = ['<h1 id="headline_tarife">Tarifprofile</h1>',
           _form(cgi, tkn, "showTariffProfile", form_id="form_tariffform")]
    if profiles:
        opts = "".join(f'<option value="{esc(tid)}">{esc(name)}</option>'
                       for tid, name in profiles)
        out.append(f'<select name="tid" id="tarifform_select_profile">{opts}</select>')
        out.append(_button("form_tariffform_button_profil", "showTariffProfile",
                           "Tarifprofil"))
        out.append(_button("form_tariffform_button_tarifierung", "showTarificationForm",
                           "Tarifierung"))
    else:
        out.append('<p id="div_meldung">Keine Tarifprofile vorhanden.</p>')
    out.append("</form>")
    return "\n".join(out)


def tariff_profile(*, name: str, rows: Sequence[tuple[str, str]],
                   channels: Sequence[tuple[str, str, str]]) -> str:
    """Label/value rows, then the channels (OBIS, Messgröße, meter domain)."""
    info = "\n".join(f"<tr>{_td(None, k)}{_td(None, v)}</tr>" for k, v in rows)
    chans = "\n".join(f"<tr>{_td('table_tafvalues_col_obis', o)}"
                      f"{_td('table_tafvalues_col_messgroesse', m)}"
                      f"{_td('table_tafvalues_col_domain', d)}</tr>" for o, m, d in channels)
    return (f'<h1 id="headline_tarifprofil">Tarifprofil {esc(name)}</h1>\n'
            f'<table id="table_tariffprofile">\n{info}\n</table>\n'
            '<table id="table_tafvalues">\n<tr><th>OBIS</th><th>Messgr&ouml;&szlig;e</th>'
            f"<th>Z&auml;hler</th></tr>\n{chans}\n</table>")


def tarification_form(*, cgi: str, tkn: str, tid: str, name: str, from_text: str,
                      to_text: str) -> str:
    return "\n".join([
        f'<h1 id="headline_tarifierung">Tarifierung {esc(name)}</h1>',
        _form(cgi, tkn, "showTarification", [("tid", tid)], name="input_tarification",
              form_id="form_tarification"),
        '<label for="tarification_from">von (JJJJ-MM-TT hh:mm:ss)</label> '
        f'<input type="text" id="tarification_from" name="from" value="{esc(from_text)}">',
        '<label for="tarification_to">bis (JJJJ-MM-TT hh:mm:ss)</label> '
        f'<input type="text" id="tarification_to" name="to" value="{esc(to_text)}">',
        _button("form_tarification_button_anzeigen", "showTarification", "Anzeigen"),
        "</form>"])


@dataclass(frozen=True)
class RegisterRow:
    """One row of the ``#tarification`` table."""

    timestamp: str      # capture (or target) time, local
    target: str         # target time, local
    value: str
    unit: str
    obis: str
    quality: str        # gültig / ungültig
    owner: str
    period: str         # "<start> - <end>" local


def tarification(*, cgi: str, tkn: str, tid: str, name: str, from_text: str, to_text: str,
                 page: int, rows: Sequence[RegisterRow], more: bool) -> str:
    lines = [f'<h1 id="headline_tarifierung">Tarifierung {esc(name)}</h1>',
             f'<p id="tarification_range">Von {esc(from_text)} bis {esc(to_text)}, '
             f"Seite {page}</p>",
             '<table id="tarification">',
             "<tr><th>Zeitstempel</th><th>Sollzeitpunkt</th><th>Wert</th><th>Einheit</th>"
             "<th>OBIS</th><th>Qualit&auml;t</th><th>Z&auml;hler/Profil</th>"
             "<th>Abrechnungsperiode</th></tr>"]
    for n, r in enumerate(rows, start=1):
        lines.append(f'<tr id="table_tafregister_line{n}">'
                     + _td("table_tafregister_col_zeitstempel", r.timestamp)
                     + _td("table_tafregister_col_sollzeitpunkt", r.target)
                     + _td("table_tafregister_col_wert", r.value)
                     + _td("table_tafregister_col_einheit", r.unit)
                     + _td("table_tafregister_col_obis", r.obis)
                     + _td("table_tafregister_col_qualitaet", r.quality)
                     + _td("table_tafregister_col_owner", r.owner)
                     + _td("table_tafregister_col_periode", r.period) + "</tr>")
    lines.append("</table>")
    if not rows:
        lines.append('<p id="div_meldung">Keine Daten vorhanden.</p>')
    pager = _pager(cgi=cgi, tkn=tkn, action="showTarification",
                   fields=[("tid", tid), ("from", from_text), ("to", to_text)], page=page,
                   more=more, prefix="table_tafregister")
    if pager:
        lines.append(pager)
    return "\n".join(lines)


@dataclass(frozen=True)
class LogRow:
    time: str
    level: str
    event_id: str
    text: str
    outcome: str        # erfolgreich / fehlgeschlagen


def log_form(*, cgi: str, tkn: str, action: str, title: str, from_text: str, to_text: str,
             prefix: str) -> str:
    return "\n".join([
        f'<h1 id="headline_{prefix}">{esc(title)}</h1>',
        _form(cgi, tkn, action, name=f"input_{prefix}", form_id=f"form_{prefix}"),
        f'<label for="{prefix}_from">von (Datum): (JJJJ-MM-TT std:min:sec)</label> '
        f'<input type="text" id="{prefix}_from" name="from" value="{esc(from_text)}">',
        f'<label for="{prefix}_to">bis (Datum): (JJJJ-MM-TT std:min:sec)</label> '
        f'<input type="text" id="{prefix}_to" name="to" value="{esc(to_text)}">',
        _button(f"form_{prefix}_button_anzeigen", action, "Anzeigen"),
        "</form>"])


def log_table(*, cgi: str, tkn: str, action: str, title: str, from_text: str, to_text: str,
              page: int, rows: Sequence[LogRow], more: bool, empty_text: str) -> str:
    """Log entries of a range (system log for technicians, consumer log for consumers)."""
    lines = [f'<h1 id="headline_logdaten">{esc(title)}</h1>',
             f'<p id="logs_range">Von {esc(from_text)} bis {esc(to_text)}, Seite {page}</p>',
             '<table id="table_logs">',
             "<tr><th>Zeit</th><th>Level</th><th>ID</th><th>Nachricht</th><th>Status</th></tr>"]
    for n, r in enumerate(rows, start=1):
        lines.append(f'<tr id="table_log_line{n}">' + _td("table_logs_col_zeit", r.time)
                     + _td("table_logs_col_loglevel", r.level)
                     + _td("table_logs_col_logid", r.event_id)
                     + _td("table_logs_col_msgtext", r.text)
                     + _td("table_logs_col_outcome", r.outcome) + "</tr>")
    lines.append("</table>")
    if not rows:
        lines.append(f'<p id="div_meldung">{esc(empty_text)}</p>')
    pager = _pager(cgi=cgi, tkn=tkn, action=action,
                   fields=[("from", from_text), ("to", to_text)], page=page, more=more,
                   prefix="table_logs")
    if pager:
        lines.append(pager)
    return "\n".join(lines)


def info_rows(rows: Sequence[tuple[str, str]], *, table_id: str) -> str:
    """A table of label/value rows."""
    body = "\n".join(f"<tr>{_td(None, k)}{_td(None, v)}</tr>" for k, v in rows)
    return f'<table id="{table_id}">\n{body}\n</table>'


def info_table(title: str, rows: Sequence[tuple[str, str]], *, table_id: str,
               headline_id: str) -> str:
    return f'<h1 id="{headline_id}">{esc(title)}</h1>\n' + info_rows(rows, table_id=table_id)
