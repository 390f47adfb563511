"""The log-message catalogue as data (seed 000 §10, Tabelle 13 and 14; seed 002 §5, §9.3).

Only literals here; :mod:`smgw.logbook.catalogue` turns them into ``EventDef`` objects and checks
them. The message texts and actions are our own German wording of the manual's meaning; the ids,
levels and parameters are the catalogue's.

Where the seed's text is cut off by the PDF extraction (10089, 10166, 10167, 10170, 10171, 10207)
the meaning is taken from the sibling entries (created / deleted / changed, "Dabei sind [n] Fehler
aufgetreten: [Fehler]").
"""

# Optional parameters of the entries ending in "Dabei sind [n] Fehler aufgetreten: [Fehler]":
# callers that have nothing to report leave them out.
ERR = {"n_errors": 0, "errors": "keine"}
ERR_DETAIL = {"errors": "keine"}

# What the technician / operator does (Tabelle 13, column "Aktion"), in our words.
ACTIONS = {
    "none": "Nichts zu tun.",
    "gwa": "Gateway-Administrator benachrichtigen.",
    "gwa_meter": "Gateway-Administrator benachrichtigen und einen Tausch des Zählers prüfen.",
    "gwa_3h": "Gateway-Administrator benachrichtigen, wenn die Meldung binnen einer Stunde "
              "mehr als dreimal erscheint.",
    "wan": "WAN-Anschluss prüfen; ist dort kein Fehler zu finden, den Gateway-Administrator "
           "benachrichtigen.",
    "clarify": "Ursache möglichst zusammen mit dem Gateway-Administrator klären.",
    "gwa_if_failed": "Bei INFO nichts zu tun; bei ERROR (Status fehlgeschlagen) den "
                     "Gateway-Administrator benachrichtigen.",
    "clarify_if_failed": "Bei INFO nichts zu tun; bei WARNING (Status fehlgeschlagen) die "
                         "Ursache möglichst mit dem Gateway-Administrator klären.",
}

# Why an event goes to the calibration log (Eichlog). 002 §5.4: "eichtechnisch relevante
# Ereignisse (z. B. erkannte Verfälschungen von Messungen, fehlgeschlagene
# Zeitsynchronisierungen)" and "Änderungen an eichtechnisch relevanten Parametern (z. B.
# Zeitsprünge bei der Uhrzeitsynchronisation oder Änderungen der Tarifprofile)".
CALIBRATION_REASONS = {  # key: (short reference for the source field, the reason)
    "time": ("002 §5.4; 000 T8; 001 D-2.2",
             "002 §5.4 (time synchronisation, time jumps, failed synchronisation); "
             "000 §2.6 T8 and 001 D-2.2 (invalid time stops measuring)"),
    "meter_data": ("002 §5.4, §4.2.5",
                   "002 §5.4 (detected falsification of measurements); 002 §4.2.5 "
                   "(error detection of meter data)"),
    "tariff": ("002 §5.4", "002 §5.4 (changes of tariff profiles)"),
    "param": ("002 §5.4", "002 §5.4 (changes of metrologically relevant parameters)"),
    "meters": ("001 C-1 + decision",
               "001 C-1 (assignment of meters is configuration whose changes are recorded); "
               "decision: which meter's values are registered is metrologically relevant"),
    "software": ("001 D-2.1 + decision",
                 "001 D-2.1 (active software version must match the expected one); "
                 "decision: every software change and its integrity goes to the Eichlog"),
    "selftest": ("000 §4.4; 001 E-5.8 + decision",
                 "000 §4.4, 001 E-5.8; decision: self-test results (not the trigger) are "
                 "metrologically relevant"),
    "state": ("000 T8; 002 §8",
              "000 §2.6 T8 and 002 §8 (operating states: measuring stopped / resumed)"),
    "eichlog": ("000 T8 + decision",
                "000 §2.6 T8 (calibration log full -> minimal operation); decision: the "
                "Eichlog's own service and capacity"),
    "storage": ("000 T8",
                "000 §2.6 T8 (storage full or database integrity broken stops measuring)"),
    "meter_keys": ("000 T8 + decision",
                   "000 §2.6 T8 (expired meter certificate stops measuring); decision: meter "
                   "keys and certificates protect the measured values"),
    "power": ("decision",
              "decision: start, restart and loss of supply interrupt the measurement and can "
              "invalidate the time (000 10041)"),
    "deletion": ("decision",
                 "decision: deleting original or derived measured values removes billing "
                 "data"),
}

# Consumer-log events that seed 002 §9.3 does not list but §5.2 describes: "wer, wann, welche
# Daten erhalten hat, oder ob benutzerbezogene Daten (z. B. Profile) geändert bzw. hinzugefügt
# oder entfernt wurden".
CONSUMER_REASONS = {  # key: (short reference, the reason)
    "profiles": ("002 §5.2", "002 §5.2 (user-related profiles added, changed or removed)"),
    "data": ("002 §5.2", "002 §5.2 (who received which data, when; the consumer's own data)"),
    "own_log": ("decision",
                "decision: concerns the consumer's own log (002 §5.2, cf. 002 §9.3.7 "
                "4294948294)"),
}

# (id, level, level when the status is "failed" or None, text, action, calibration reason or
# None[, defaults]).  Every event also goes to the system log (002 §5.3: every important event;
# 000 §10: the technician sees them there).
EVENTS = (
    # logging services (10000-10011)
    (10000, "INFO", None, "Eichlog-Dienst gestartet.", "none", "eichlog"),
    (10001, "INFO", None, "Eichlog-Dienst regulär beendet.", "none", "eichlog"),
    (10002, "WARNING", None,
     "Eichlog-Dienst konnte den letzten Eintrag nicht ablegen, weil der Speicherdienst fehlte "
     "oder einen Fehler meldete; Eintrag zwischengepuffert, abhängige Dienste pausiert. "
     "Ursache: {reason}", "gwa", "eichlog"),
    (10003, "ERROR", None,
     "Eichlog-Dienst unerwartet beendet (Rückgabecode {return_code}); abhängige Dienste werden "
     "angehalten. Ursache: {reason}", "gwa", "eichlog"),
    (10004, "INFO", None, "Systemlog-Dienst gestartet.", "none", None),
    (10005, "INFO", None, "Systemlog-Dienst regulär beendet.", "none", None),
    (10006, "WARNING", None,
     "Systemlog-Dienst konnte den letzten Eintrag nicht ablegen, weil der Speicherdienst fehlte "
     "oder einen Fehler meldete; Eintrag zwischengepuffert, abhängige Dienste pausiert. "
     "Ursache: {reason}", "gwa", None),
    (10007, "ERROR", None,
     "Systemlog-Dienst unerwartet beendet (Rückgabecode {return_code}); abhängige Dienste "
     "werden angehalten. Ursache: {reason}", "gwa", None),
    (10008, "INFO", None, "Letztverbraucherlog-Dienst für {consumer} gestartet.", "none", None),
    (10009, "INFO", None, "Letztverbraucherlog-Dienst für {consumer} regulär beendet.", "none",
     None),
    (10010, "WARNING", None,
     "Letztverbraucherlog-Dienst für {consumer} konnte den letzten Eintrag nicht ablegen, weil "
     "der Speicherdienst fehlte oder einen Fehler meldete; abhängige Dienste angehalten. "
     "Ursache: {reason}", "gwa", None),
    (10011, "ERROR", None,
     "Letztverbraucherlog-Dienst für {consumer} unerwartet beendet (Rückgabecode "
     "{return_code}); abhängige Dienste werden angehalten. Ursache: {reason}", "gwa", None),
    # gateway, meters
    (10018, "INFO", None, "Erstinbetriebnahme des SMGW {smgw}.", "none", "power"),
    (10020, "INFO", None, "Zähler {meter} wurde neu eingerichtet.", "none", "meters"),
    (10022, "INFO", None, "Zähler {meter} wurde entfernt.", "none", "meters"),
    (10023, "INFO", None,
     "Eichrechtlich relevanter Parameter {parameter} in Profil {profile} geändert: vorher "
     "{value_old}, jetzt {value_new}.", "none", "param"),
    (10033, "WARNING", None, "Zähler {meter}: Fehler gemeldet (Code {code}).", "gwa",
     "meter_data"),
    (10037, "ERROR", None, "Zähler {meter}: fataler Fehler gemeldet (Code {code}).",
     "gwa_meter", "meter_data"),
    (10040, "INFO", None,
     "Neustart des SMGW {smgw} auf Anweisung des Gateway-Administrators.", "none", "power"),
    (10041, "ERROR", None,
     "SMGW {smgw} war länger ohne Versorgung, als die Echtzeituhr überbrücken kann; Messwerte "
     "gelten bis zur nächsten gelungenen Zeitsynchronisation als ungültig.", "none", "time"),
    (10042, "ERROR", None,
     "Neustart des SMGW {smgw}: Überwachung {watchdog} hat eine Störung der Komponente "
     "{component} festgestellt.", "gwa_3h", "power"),
    (10049, "INFO", None, "Zugangsdaten des Benutzers {user} wurden geändert.", "none", None),
    (10058, "INFO", None,
     "WakeUp-Paket von {ip} ist gültig; der Managementkanal wird aufgebaut.", "none", None),
    (10061, "WARNING", None,
     "Zu viele fehlgeschlagene Anmeldungen: HAN-Schnittstelle vorübergehend gesperrt.",
     "gwa_3h", None),
    # self-test, time
    (10063, "INFO", None, "Selbsttest gestartet, veranlasst durch {initiator}.", "none", None),
    (10064, "INFO", None, "Selbsttest ohne Befund beendet.", "none", "selftest"),
    (10065, "WARNING", None,
     "Selbsttest beendet: {recoverable} behebbare und {severe} schwere Fehler. "
     "Einzelheiten: {errors}", "gwa", "selftest"),
    (10067, "INFO", None,
     "Uhrzeit über {profile} auf {remote_time} synchronisiert; Abweichung {seconds} s.", "none",
     "time"),
    (10068, "WARNING", None, "Seit {hours} Stunden keine gelungene Zeitsynchronisation.", "wan",
     "time"),
    (10069, "ERROR", None, "Keine Antwort vom Zeitserver {profile}.", "wan", "time"),
    (10071, "ERROR", None,
     "Höchstabstand zwischen zwei Zeitsynchronisationen überschritten; neue Messwerte werden bis "
     "zur nächsten Synchronisation als ungültig gekennzeichnet.", "wan", "time"),
    (10072, "ERROR", None,
     "Zeitkorrektur bei der Synchronisation größer als zulässig; betroffene Einträge der "
     "Messwertliste sind ungültig.", "none", "time"),
    (10073, "INFO", None, "Uhrzeit wieder gültig: erneute Synchronisation gelungen.",
     "none", "time"),
    # WAN connections, crypto
    (10080, "ERROR", None,
     "Zugriff von {comm_profile} auf {resource}: das SMGW antwortete mit HTTP-Fehler "
     "{http_status}.", "none", None),
    (10081, "ERROR", None,
     "Keine TCP/IP-Verbindung zu {comm_profile} möglich: keine Antwort der Gegenstelle.", "wan",
     None),
    (10082, "ERROR", None,
     "Gegenstelle {peer} hat die TCP/IP-Verbindung zu {comm_profile} zurückgesetzt.", "none",
     None),
    (10087, "INFO", None, "Verbindung zu {comm_profile} steht.", "none", None),
    (10088, "INFO", "WARNING",
     "Das Gateway hat die Verbindung zu {comm_profile} beendet ({n_errors} Fehler, "
     "Einzelheiten: {errors}).", "none", None, ERR),
    (10089, "INFO", "WARNING",
     "Die Gegenstelle hat die Verbindung zu {comm_profile} beendet ({n_errors} Fehler, "
     "Einzelheiten: {errors}).", "none", None, ERR),
    (10091, "ERROR", None,
     "Verschlüsseln mit Schlüssel {key} (Zertifikat Nr. {cert_serial}) misslungen. "
     "Ursache: {reason}", "gwa", None),
    (10092, "ERROR", None,
     "Signaturprüfung mit Schlüssel {key} (Zertifikat Nr. {cert_serial}) misslungen. "
     "Ursache: {reason}", "gwa", None),
    (10093, "ERROR", None,
     "Entschlüsseln eines CMS-Containers mit dem Schlüssel zu Zertifikat Nr. {cert_serial} "
     "misslungen. Ursache: {reason}", "gwa", None),
    (10094, "ERROR", None, "Dekomprimieren eines CMS-Containers misslungen. Ursache: {reason}",
     "gwa", None),
    (10097, "WARNING", None,
     "Weniger als 10 % des Speichers für Eichlog-Einträge frei; das SMGW ist bald zu tauschen.",
     "gwa", "eichlog"),
    (10098, "FATAL", None,
     "Speicher für Eichlog-Einträge voll: Messbetrieb eingestellt, das SMGW ist umgehend zu "
     "tauschen.", "gwa", "eichlog"),
    (10118, "WARNING", None,
     "Unzulässiger Zugriffsversuch von {caller} auf {service}: {method}.", "gwa", None),
    # software update
    (10136, "INFO", None, "Download eines Softwarepakets von {url} begonnen.", "none", None),
    (10137, "WARNING", None,
     "Download eines Softwarepakets von {url} unterbrochen. Ursache: {reason}", "gwa", None),
    (10138, "INFO", None, "Download eines Softwarepakets von {url} fortgesetzt.", "none", None),
    (10139, "WARNING", None, "Abbruch des Downloads eines Softwarepakets von {url}.", "gwa",
     None),
    (10140, "INFO", None,
     "Softwarepaket {package} von Version {version_old} auf {version_new} gebracht (Signatur "
     "{signature}).", "none", "software"),
    (10143, "ERROR", None, "Installation von Softwarepaket {package} misslungen. Ursache: "
     "{reason}", "gwa", "software"),
    (10144, "INFO", "ERROR",
     "Gerätesoftware von {version_new} auf die Sicherung {version_old} zurückgesetzt.",
     "gwa_if_failed", "software"),
    (10151, "INFO", "ERROR",
     "WAN-IP-Konfiguration geändert: Adresse {ip_prefix}, Standard-Gateway {default_gateway} "
     "({n_errors} Fehler, Einzelheiten: {errors}).", "none", None, ERR),
    (10152, "INFO", "ERROR",
     "HAN-IP-Konfiguration geändert: Adresse {ip_prefix}, Standard-Gateway {default_gateway} "
     "({n_errors} Fehler, Einzelheiten: {errors}).", "none", None, ERR),
    (10155, "ERROR", None,
     "Dienst {service} (PID {pid}) unerwartet beendet, Rückgabecode {return_code}. "
     "Einzelheiten: {errors}", "gwa", None),
    (10156, "WARNING", None, "Dienst {service} neu gestartet.", "none", None),
    # meter data, profiles
    (10164, "INFO", None, "Zähler {meter} hat ein Datenpaket geliefert.", "none", None),
    (10165, "INFO", None,
     "Messwerte des Tarifprofils {tariff_profile} von {start} bis {end} an den Marktteilnehmer "
     "mit Kommunikationsprofil {comm_profile} übermittelt.", "none", None),
    (10166, "INFO", "ERROR",
     "Tarifprofil {tariff_profile} angelegt ({n_errors} Fehler, Einzelheiten: {errors}).",
     "none", "tariff", ERR),
    (10167, "INFO", "ERROR",
     "Tarifprofil {tariff_profile} gelöscht ({n_errors} Fehler, Einzelheiten: {errors}).",
     "none", "tariff", ERR),
    (10168, "INFO", "ERROR",
     "Tarifprofil {tariff_profile} geändert ({n_errors} Fehler, Einzelheiten: {errors}).",
     "none", "tariff", ERR),
    (10169, "INFO", "ERROR",
     "Kommunikationsprofil {comm_profile} angelegt ({n_errors} Fehler, Einzelheiten: "
     "{errors}).", "none", None, ERR),
    (10170, "INFO", "ERROR",
     "Kommunikationsprofil {comm_profile} gelöscht ({n_errors} Fehler, Einzelheiten: "
     "{errors}).", "none", None, ERR),
    (10171, "INFO", "ERROR",
     "Kommunikationsprofil {comm_profile} geändert ({n_errors} Fehler, Einzelheiten: "
     "{errors}).", "none", None, ERR),
    (10172, "INFO", None, "Letzter Ausfall der Versorgungsspannung: {when}.", "gwa", "power"),
    (10173, "INFO", None, "SMGW {smgw} ist hochgefahren.", "none", "power"),
    (10174, "INFO", None, "Servicetechniker {technician} am SMGW angemeldet.", "none", None),
    (10175, "INFO", None, "Zähler {meter} hat die HDLC-Adresse {address} erhalten.", "none",
     None),
    (10176, "INFO", None, "Keep-Alive-Signal an den Gateway-Administrator gesendet.", "none",
     None),
    (10177, "INFO", None, "Alarm: Stand des Software-Updates gemeldet.", "none", None),
    (10179, "ERROR", None, "Ungültige URL für den WAN-Dienst: {url}.", "none", None),
    (10180, "ERROR", None, "Ungültiges XML für den WAN-Dienst.", "none", None),
    (10181, "INFO", None,
     "Objekt {object} über WAN-Profil {wan_profile} an der WAN-Schnittstelle gelesen.", "none",
     None),
    (10183, "INFO", None, "Zählerprofil {profile} ist jetzt aktiv.", "none", "meters"),
    (10184, "INFO", None, "Zählerprofil {profile} ist jetzt inaktiv.", "none", "meters"),
    (10186, "INFO", None,
     "Zähler {meter} nutzt nach dem Schlüsselaustausch den Betriebsschlüssel {key_id}.", "none",
     "meter_keys"),
    (10197, "WARNING", None, "Versuch, mehr Zählerprofile als zulässig anzulegen.", "none",
     None),
    (10198, "INFO", None, "Neues TLS-Zertifikat für die Verbindung zu Zähler {meter} erzeugt.",
     "none", "meter_keys"),
    (10207, "INFO", "ERROR",
     "Zählerprofil {profile} wurde angelegt ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", "meters", ERR),
    (10208, "INFO", "ERROR",
     "Zählerprofil {profile} wurde gelöscht ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", "meters", ERR),
    (10209, "INFO", "ERROR",
     "Zählerprofil {profile} wurde geändert ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", "meters", ERR),
    (10211, "INFO", None,
     "Wechsel des Gateway-Administrators von {old_gwa} zu {new_gwa} eingeleitet.", "none", None),
    (10212, "INFO", None,
     "Wechsel des Gateway-Administrators von {old_gwa} zu {new_gwa} abgeschlossen.", "none",
     None),
    (10213, "INFO", None,
     "Wechsel des Gateway-Administrators von {old_gwa} zu {new_gwa} abgebrochen. "
     "Ursache: {reason}", "gwa", None),
    (10214, "ERROR", None,
     "Pairing von Zähler {meter} mit SMGW {smgw} misslungen. Ursache: {reason}", "gwa", None),
    (10215, "INFO", None,
     "Auswerteprofil {profile_name} (Domäne {profile_domain}) ist jetzt aktiv.", "none",
     "tariff"),
    (10216, "INFO", None,
     "Auswerteprofil {profile_name} (Domäne {profile_domain}) ist jetzt inaktiv.", "none",
     "tariff"),
    (10217, "WARNING", None, "Kommunikationsprofil zurückgewiesen. Ursache: {reason}", "gwa",
     None),
    (10218, "WARNING", None, "Zählerprofil zurückgewiesen. Ursache: {reason}", "gwa", None),
    (10219, "WARNING", None, "Auswerteprofil zurückgewiesen. Ursache: {reason}", "gwa", None),
    (10220, "INFO", None,
     "Originäre Messwerte von Zähler {meter} mit Erfassungszeit vor {cutoff} gelöscht.", "none",
     "deletion"),
    (10221, "INFO", None,
     "Abgeleitete Messwerte des Auswerteprofils {profile_name} ({evaluation_profile}) mit "
     "Erfassungszeit vor {cutoff} gelöscht.", "none", "deletion"),
    (10223, "FATAL", None,
     "Integrität des Speichers nicht mehr gewährleistet; Messbetrieb eingestellt. "
     "Ursache: {reason}", "gwa", "storage"),
    (10224, "WARNING", None, "WakeUp-Paket verworfen. Ursache: {reason}", "gwa", None),
    (10225, "WARNING", None,
     "Zu viele ungültige WakeUp-Pakete: WakeUp-Pakete werden vorübergehend ignoriert.", "gwa",
     None),
    (10227, "INFO", None,
     "Der Gateway-Administrator fordert den Download eines Softwarepakets von {url} an.",
     "none", None),
    (10228, "INFO", "WARNING",
     "Letztverbraucher {consumer} am SMGW angemeldet. Aufgetretene Fehler: {errors}",
     "clarify_if_failed", None, ERR_DETAIL),
    (10229, "WARNING", None,
     "Verbindungsaufbau über Profil {profile} abgebrochen. Ursache: {reason}", "gwa", None),
    (10230, "INFO", None, "Download eines Softwarepakets von {url} vollständig.", "none", None),
    (10231, "ERROR", None,
     "Zugriff von {comm_profile} auf {resource}: die Gegenstelle antwortete mit HTTP-Fehler "
     "{http_status}.", "clarify", None),
    (10232, "ERROR", None, "CMS-Container nicht auswertbar.", "gwa", None),
    (10233, "ERROR", None,
     "Signieren eines CMS-Containers mit dem Schlüssel zu Zertifikat Nr. {cert_serial} "
     "misslungen. Ursache: {reason}", "gwa", None),
    (10234, "ERROR", None, "Komprimieren eines CMS-Containers misslungen. Ursache: {reason}",
     "gwa", None),
    # capacities
    (10235, "INFO", None, "Freier Speicher für Eichlog-Einträge: {percent} % der Kapazität.",
     "none", "eichlog"),
    (10236, "INFO", None,
     "Freier Speicher im Letztverbraucherlog von {consumer}: {percent} % der Kapazität.",
     "none", None),
    (10237, "WARNING", None,
     "Freier Speicher im Letztverbraucherlog von {consumer} unter 10 % der Kapazität.", "gwa",
     None),
    (10238, "ERROR", None,
     "Letztverbraucherlog von {consumer} voll: Messbetrieb eingestellt, das SMGW sollte "
     "umgehend getauscht werden.", "clarify", "state"),
    (10239, "INFO", None,
     "Systemlog hat seine Höchstgröße erreicht; ab jetzt werden die ältesten Einträge "
     "überschrieben.", "none", None),
    (10240, "INFO", None, "Installation von Softwarepaket {package} beginnt.", "none",
     "software"),
    (10241, "INFO", "ERROR",
     "CLS-IP-Konfiguration geändert: Adresse {ip_prefix}, Standard-Gateway {default_gateway} "
     "({n_errors} Fehler, Einzelheiten: {errors}).", "gwa_if_failed", None, ERR),
    (10242, "INFO", None, "Anfrage ({request_type}) für {uri} eingegangen.", "none", None),
    (10243, "INFO", None, "AUTH-Zustand hergestellt.", "none", None),
    (10244, "INFO", None, "AUTH-Zustand aufgehoben.", "none", None),
    (10245, "ERROR", None, "AUTH-Zustand nicht hergestellt. Ursache: {reason}", "clarify",
     None),
    (10246, "INFO", None, "Neues Zertifikatstripel für das SMGW angefordert.", "none", None),
    (10247, "INFO", None,
     "Neues Zertifikatstripel abgelegt (Seriennummern {serial1}, {serial2}, {serial3}).",
     "none", None),
    (10248, "ERROR", None,
     "Anfordern oder Erzeugen eines neuen Zertifikatstripels für das SMGW misslungen. "
     "Ursache: {reason}", "clarify", None),
    (10249, "INFO", "ERROR",
     "Neue öffentliche Schlüssel des Gateway-Administrators eingespielt ({key1}, {key2}, "
     "{key3}; {n_errors} Fehler, Einzelheiten: {errors}).", "gwa_if_failed", None, ERR),
    (10250, "INFO", "ERROR",
     "Öffentliche Schlüssel des Gateway-Administrators entfernt ({key1}, {key2}, {key3}; "
     "{n_errors} Fehler, Einzelheiten: {errors}).", "gwa_if_failed", None, ERR),
    (10251, "INFO", "ERROR",
     "Neue Zertifikate des Gateway-Administrators eingespielt ({n_errors} Fehler, "
     "Einzelheiten: {errors}).", "gwa_if_failed", None, ERR),
    (10252, "INFO", "ERROR",
     "Neuer Schlüssel des SMGW erzeugt ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", None, ERR),
    (10253, "INFO", None,
     "Letztverbraucherlog von {consumer} hat seine Höchstgröße erreicht; ab jetzt werden die "
     "ältesten Einträge überschrieben.", "none", None),
    (10254, "INFO", None, "Freier Speicher im Systemlog: {percent} % der Kapazität.", "none",
     None),
    (10255, "INFO", None,
     "Freier Speicher im Letztverbraucherlog von {consumer} wieder bei {percent} % der "
     "Kapazität.", "none", None),
    (10256, "INFO", None, "Freier Speicher des SMGW: {percent} % der Kapazität.", "none", None),
    (10257, "WARNING", None, "Nur noch 30 % des SMGW-Speichers frei.", "gwa", None),
    (10258, "WARNING", None, "Nur noch 20 % des SMGW-Speichers frei.", "gwa", None),
    (10259, "ERROR", None,
     "Speicher des SMGW voll: Messbetrieb eingestellt, das SMGW ist zu tauschen.", "gwa",
     "storage"),
    (10260, "ERROR", None, "Das SMGW stellt den Messbetrieb ein.", "gwa", "state"),
    (10261, "INFO", None, "Das SMGW nimmt den Messbetrieb wieder auf.", "none", "state"),
    (10262, "ERROR", None,
     "Daten von Zähler {meter} ließen sich nicht entschlüsseln. Ursache: {reason}", "clarify",
     "meter_data"),
    (10263, "ERROR", None, "Prüfsumme der Daten von Zähler {meter} ist ungültig.", "clarify",
     "meter_data"),
    (10264, "ERROR", None,
     "Unerwarteter Transmission Counter in Daten von Zähler {meter}: erwartet "
     "{counter_expected}, erhalten {counter_received}.", "clarify", "meter_data"),
    # CLS, tariffs, state
    (10265, "INFO", "ERROR",
     "CLS-Profil {cls_profile} hinzugefügt ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", None, ERR),
    (10266, "INFO", "ERROR",
     "CLS-Profil {cls_profile} aktualisiert ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", None, ERR),
    (10267, "INFO", "ERROR",
     "CLS-Profil {cls_profile} entfernt ({n_errors} Fehler, Einzelheiten: {errors}).",
     "gwa_if_failed", None, ERR),
    (10268, "INFO", "ERROR",
     "Aufbau eines transparenten Kanals für CLS {cls_profile}, veranlasst durch {trigger}.",
     "gwa_if_failed", None),
    (10269, "ERROR", None,
     "Messwerte des Tarifprofils {tariff_profile} von {start} bis {end} konnten dem "
     "Marktteilnehmer mit Kommunikationsprofil {comm_profile} nicht übermittelt werden.", "gwa",
     None),
    (10270, "WARNING", None, "Proxyprofil zurückgewiesen. Ursache: {reason}", "gwa", None),
    (10271, "ERROR", None, "Das SMGW stellt den Betrieb ein.", "gwa", "state"),
    (10272, "INFO", None,
     "Tarifprofil {tariff_profile}: Wechsel auf Tarifstufe {tariff_stage} zum {switch_time}.",
     "none", "tariff"),
    (10273, "INFO", None,
     "Systemüberwachung: Ressource {hw_component} überlastet; ergriffene Maßnahme: {measure}.",
     "gwa_3h", None),
    (10274, "WARNING", None,
     "Telegramm von Zähler {meter} im Protokoll {protocol} hat eine unverständliche Syntax und "
     "wurde verworfen ({reason}).", "none", "meter_data"),
    (10275, "WARNING", None, "LMN-Zertifikat abgelaufen (SMGW {smgw} / Zählerprofil {profile}).",
     "gwa", "meter_keys"),
    (10276, "WARNING", None,
     "HAN-Zertifikat des SMGW {smgw} ist nicht mehr gültig (Ablaufdatum überschritten).", "gwa",
     None),
    (17001, "INFO", None, "SMGW {smgw} hat die WAN-IP-Adresse {wan_ip}.", "none", None),
    (30300, "INFO", None, "Das SMGW arbeitet im Normalbetrieb.", "none", "state"),
)

# One per meter telegram or per request: logged at DEBUG on the console (still in the logbooks).
FREQUENT = (10164, 10242)

# Seed 002 §9.3: every event of the consumer log, mapped to our ids by meaning.
# (event_id, event_sub_id, §, what it says, our ids, note)
CONSUMER_002 = (
    (1011, 1, "9.3.1", "meter reports a temporary value error status", (10033,), ""),
    (1011, 2, "9.3.1", "meter reports a fatal value error status", (10037,), ""),
    (5001, 0, "9.3.2", "HAN login with user name and password", (10228,), ""),
    (5001, 1, "9.3.2", "HAN login with password refused: invalid credentials", (10228,),
     "status failed"),
    (5001, 2, "9.3.2", "HAN login with password failed with an error", (10228,),
     "status failed"),
    (5002, 0, "9.3.2", "HAN login with a user certificate", (10228,), ""),
    (5002, 1, "9.3.2", "HAN login with a certificate refused: not valid or not trusted",
     (10228,), "status failed"),
    (5002, 2, "9.3.2", "HAN login with a certificate failed with an error", (10228,),
     "status failed"),
    (6001, 0, "9.3.3", "return of the supply voltage detected", (10172,), ""),
    (13001, 1, "9.3.4", "system time assumed invalid", (10041, 10071), ""),
    (13002, 0, "9.3.4", "system time set (new, old, difference)", (10067,), ""),
    (13003, 0, "9.3.4", "system time synchronised with the legal time", (10067, 10073), ""),
    (13005, 1, "9.3.4", "synchronisation difference above 3 % of the smallest registration "
     "period", (10072,), ""),
    (4294954294, 0, "9.3.4", "system time set from the RTC", (),
     "no id in 000 T13: the start itself is 10173; setting the clock from the RTC has no "
     "message of its own"),
    (15001, 0, "9.3.5", "self-test passed", (10064,), ""),
    (15001, 1, "9.3.5", "self-test failed with n errors", (10065,), ""),
    (15002, 0, "9.3.5", "self-test triggered by [1]", (10063,), ""),
    (15002, 1, "9.3.5", "self-test could not be triggered by [1]", (10063,), "status failed"),
    (16001, 0, "9.3.6", "n values sent to the market participant for a period", (10165,), ""),
    (16002, 0, "9.3.6", "values of the initial reading sent", (10165,), ""),
    (16003, 0, "9.3.6", "values of the final reading sent", (10165,), ""),
    (16004, 0, "9.3.6", "on-demand reading triggered for an evaluation profile", (10181,), ""),
    (16004, 4, "9.3.6", "on-demand reading for a market participant not in the profile",
     (10181,), "status failed"),
    (16005, 0, "9.3.6", "n values of an on-demand reading sent", (10165,), ""),
    (19001, 1, "9.3.7", "integrity of the gateway violated or no longer assured", (10223,), ""),
    (19004, 0, "9.3.7", "firmware start completed", (10173,), ""),
    (19005, 1, "9.3.7", "measuring stopped", (10260,), ""),
    (19006, 0, "9.3.7", "measuring started", (10261, 30300), ""),
    (19006, 1, "9.3.7", "warning while capturing or processing values", (10274,), ""),
    (19006, 2, "9.3.7", "error while capturing or processing values", (10262, 10263, 10264),
     ""),
    (19007, 2, "9.3.7", "storage capacity exhausted", (10259,), ""),
    (19008, 2, "9.3.7", "calibration log capacity exhausted", (10098,), ""),
    (4294948294, 1, "9.3.7", "consumer log full, entries older than 15 months deleted",
     (10253, 10238), ""),
    (4294948293, 1, "9.3.7", "n or more invalid authentication attempts", (10061,), ""),
    (4294948286, 1, "9.3.7", "fatal error, soft lock-down", (10271,), ""),
    (4294948285, 0, "9.3.7", "device shuts down and restarts", (10040, 10042), ""),
    (4294948284, 1, "9.3.7", "incomplete entry found in a log file", (10002, 10006, 10010),
     "the last entry of a log could not be written"),
    (4294948266, 2, "9.3.7", "first start or start after an unexpected reboot",
     (10018, 10042), ""),
    (20003, 0, "9.3.8", "communication profile updated", (10171,), ""),
    (20010, 0, "9.3.8", "evaluation profile created", (10166,), ""),
    (20011, 0, "9.3.8", "evaluation profile updated", (10168,), ""),
    (20012, 0, "9.3.8", "evaluation profile ended", (10216,), ""),
    (20013, 0, "9.3.8", "evaluation profile deleted", (10167,), ""),
    (20018, 0, "9.3.8", "CLS-EMT connection set up by a proxy profile", (10268,), ""),
    (20020, 0, "9.3.8", "CLS-EMT connection torn down", (),
     "no id in 000 T13: the catalogue has no teardown message for a transparent channel"),
    (20029, 0, "9.3.8", "evaluation profile read by the GWA", (10181,), ""),
    (20030, 0, "9.3.8", "sensor profile read by the GWA", (10181,), ""),
    (20032, 0, "9.3.8", "end date corrected", (10168,), "the profile's end date changed"),
    (20033, 0, "9.3.8", "access data of a communication profile updated", (10049, 10171), ""),
    (21002, 0, "9.3.9", "tariff stage switched", (10272,), ""),
    (4294946295, 0, "9.3.9", "TAF with its meters started", (10215,), ""),
)

# Consumer-log events beyond the list of 002 §9.3, with the reason (CONSUMER_REASONS).
CONSUMER_EXTRA = {
    10008: "own_log", 10009: "own_log", 10011: "own_log",
    10236: "own_log", 10237: "own_log", 10255: "own_log",
    10020: "profiles", 10022: "profiles", 10023: "profiles",
    10169: "profiles", 10170: "profiles",
    10183: "profiles", 10184: "profiles",
    10207: "profiles", 10208: "profiles", 10209: "profiles",
    10265: "profiles", 10266: "profiles", 10267: "profiles",
    10220: "data", 10221: "data", 10269: "data",
}

# Tabelle 14 parameters and the placeholder names we use for them.
# (name, label in the catalogue, description, in Tabelle 14)
PARAMS = (
    ("address", "HDLC-Adresse", "HDLC-Adresse, die der Zähler am LMN erhalten hat", False),
    ("caller", "[ServiceName]", "Dienst, der den unzulässigen Zugriff versucht hat (Tabelle 13, "
     "10118)", False),
    ("cert_serial", "[Cert_Seriennummer]", "Seriennummer eines Zertifikats", True),
    ("cls_profile", "[CLS-Profil-Id]", "Kennung eines CLS-Profils", True),
    ("code", "[Fehlercode_Zähler]", "Fehlercode, den ein Zähler über das LMN gemeldet hat", True),
    ("comm_profile", "[Kommunikationsprofil-Id]", "Kennung eines Kommunikationsprofils", True),
    ("component", "[Komponente]", "Komponente des SMGW", True),
    ("consumer", "[Letztverbraucher-id]",
     "Kennung eines Letztverbrauchers (in Tabelle 13 auch als dessen "
     "[Kommunikationsprofil-Id])", True),
    ("counter_expected", "[Transmission_Counter_1]",
     "Erwarteter Transmission Counter der Messwerte", True),
    ("counter_received", "[Transmission_Counter_2]",
     "Tatsächlich empfangener Transmission Counter der Messwerte", True),
    ("cutoff", "[Zeit]",
     "Grenze der Vorhaltezeit: vor diesem Zeitpunkt erfasste Messwerte sind betroffen", True),
    ("default_gateway", "[Standard_Gateway]",
     "Standard-Gateway für Pakete, die nicht im eigenen Subnetz zugestellt werden", True),
    ("end", "[Datum_Zeit_Ende]", "Ende (Datum und Uhrzeit) eines Zeitraums", True),
    ("errors", "[Fehler]", "Einzelheiten zu aufgetretenen Fehlern", True),
    ("evaluation_profile", "[Auswerteprofil-Id]", "Kennung eines Auswerteprofils", True),
    ("hours", "[n]", "Zahl: Stunden seit der letzten gelungenen Zeitsynchronisation", True),
    ("http_status", "[HTTP-Fehler]", "HTTP-Fehlerstatus", True),
    ("hw_component", "[HW-Komponente]", "Hardware-Ressource des SMGW (RAM oder CPU)", True),
    ("initiator", "[Initiator]",
     "Wer den Selbsttest ausgelöst hat: Letztverbraucher, Servicetechniker, "
     "Gateway-Administrator (oder das SMGW selbst beim Start und zyklisch)", True),
    ("ip", "[Ip-Adresse]", "IP-Adresse", True),
    ("ip_prefix", "[Ip_Adresse/Anzahl_Subnetzmaskenbits]",
     "IP-Adresse mit der Länge der Subnetzmaske", True),
    ("key", "[Schlüssel]", "Öffentlicher Schlüssel eines Zertifikats", True),
    ("key1", "[Key1]", "Öffentlicher Schlüssel des Gateway-Administrators (1)", True),
    ("key2", "[Key2]", "Öffentlicher Schlüssel des Gateway-Administrators (2)", True),
    ("key3", "[Key3]", "Öffentlicher Schlüssel des Gateway-Administrators (3)", True),
    ("key_id", "[OperationalKey]",
     "Betriebsschlüssel des Zählers nach dem Wechsel des Initialschlüssels (nur seine "
     "Kennung, nie das Schlüsselmaterial)", True),
    ("measure", "[Massnahme]", "Maßnahme, die bei zu hoher Systemauslastung ergriffen wurde",
     True),
    ("meter", "[Zählernummer]",
     "Kennung des Zählers: Zählernummer bzw. Server-Id ([Geräte-Id], 14-stellige "
     "Gerätekennzahl bei drahtgebundenen Zählern)", True),
    ("method", "[MethodenName]", "Name einer internen Methode der SMGW-Software", True),
    ("n_errors", "[n]", "Zahl: Anzahl der aufgetretenen Fehler", True),
    ("new_gwa", "[Neuer_Name]", "Name des Gateway-Administrators nach dem Wechsel", True),
    ("object", "[LogicalName]",
     "Logischer Name eines Objekts im SMGW (Adressierung im Objektmodell)", True),
    ("old_gwa", "[Alter_Name]", "Name des Gateway-Administrators vor dem Wechsel", True),
    ("package", "[Paket]", "Name eines Softwarepakets eines Firmware-Updates", True),
    ("parameter", "[Parameter-id]", "Kennung eines Parameters", True),
    ("peer", "[Peer]", "IP-Adresse der Gegenstelle einer TCP-Verbindung", True),
    ("percent", "[n]", "Zahl: freier Speicher in Prozent der Kapazität", True),
    ("pid", "[Prozess_Id]", "Kennung eines Prozesses", True),
    ("profile", "[Profil-id]",
     "Kennung eines Profils, bei Zählerprofilen [Zählerprofil-ID]", True),
    ("profile_domain", "[Profil-Domäne]", "Domäne (Kennung) eines Profils", True),
    ("profile_name", "[Profil-Name]", "Name eines Profils", True),
    ("protocol", "[Protokoll]", "Protokoll des Telegramms, z. B. SML (Tabelle 13, 10274)",
     False),
    ("reason", "[Grund]", "Einzelheiten, warum es dazu kam", True),
    ("recoverable", "[n]", "Zahl: behebbare Fehler des Selbsttests", True),
    ("remote_time", "[Remote_Timestamp]",
     "Zeitstempel, den das SMGW bei der Synchronisation von der Gegenstelle erhielt", True),
    ("request_type", "[Type]", "Art einer Anfrage", True),
    ("resource", "[Ressource]", "HTTP-Ressource", True),
    ("return_code", "[Rückgabecode]", "Rückgabecode eines Dienstes des SMGW", True),
    ("role", "[Rolle]", "Rolle, die das SMGW kennt: GWA, EMT, CON, SRV oder CLS", True),
    ("seconds", "[n]",
     "Zahl: Abweichung in Sekunden zwischen Systemzeit und der Zeit der Gegenstelle", True),
    ("serial1", "[Sn1]", "Seriennummer eines Zertifikats des Tripels (1)", True),
    ("serial2", "[Sn2]", "Seriennummer eines Zertifikats des Tripels (2)", True),
    ("serial3", "[Sn3]", "Seriennummer eines Zertifikats des Tripels (3)", True),
    ("service", "[Service-Name]", "Name eines Dienstes des SMGW", True),
    ("severe", "[n]", "Zahl: schwere Fehler des Selbsttests", True),
    ("signature", "[Signatur]", "Signatur", True),
    ("smgw", "[SMGW-Id]", "Kennung des SMGW", True),
    ("start", "[Datum_Zeit_Start]", "Beginn (Datum und Uhrzeit) eines Zeitraums", True),
    ("switch_time", "[Datum_Zeit_Umschaltzeitpunkt]",
     "Zeitpunkt des Wechsels von einer Tarifstufe auf eine andere", True),
    ("tariff_profile", "[TAFProfilName]",
     "Kennung eines Tarif-(Auswerte-)profils, in Tabelle 13 auch als [LogicalName]", True),
    ("tariff_stage", "[Tarifstufe]", "Tarifstufe (Tabelle 13, 10272)", False),
    ("technician", "[Kommunikationsprofil-Id]",
     "Kennung des angemeldeten Servicetechnikers (dessen Kommunikationsprofil)", True),
    ("time_server", "[Zeitserver_Id]",
     "Adresse des Zeitservers (127.0.0.1, wenn der Gateway-Administrator die Zeit liefert)",
     True),
    ("trigger", "[Auslöser]", "Wer den Aufbau eines transparenten CLS-Kanals veranlasst hat",
     True),
    ("uri", "[Uri]", "URI einer Ressource im Objektmodell des SMGW", True),
    ("url", "[Url]", "URL einer Ressource (z. B. eines Softwarepakets)", True),
    ("user", "[Benutzername]", "Benutzername eines Letztverbrauchers", True),
    ("value_new", "[Wert_nachher]", "Wert eines Parameters nach der Änderung", True),
    ("value_old", "[Wert_vorher]", "Wert eines Parameters vor der Änderung", True),
    ("version_new", "[VersionNeu]", "Firmware-Version nach dem Update ([VersionNachher])",
     True),
    ("version_old", "[VersionAlt]", "Firmware-Version vor dem Update ([VersionVorher])", True),
    ("wan_ip", "[WANIPADDR]", "WAN-IP-Adresse des SMGW", True),
    ("wan_profile", "[LogicalName]", "Logischer Name des WAN-Profils, über das gelesen wurde",
     True),
    ("watchdog", "[Watchdog]", "Überwachungsfunktion, die die Störung erkannt hat (Tabelle 13, "
     "10042)", False),
    ("when", "[Datum_Uhrzeit]", "Zeitpunkt (Datum und Uhrzeit)", True),
)
