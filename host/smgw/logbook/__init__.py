"""The gateway's logbooks: calibration log (Eichlog), system log, one consumer log per consumer.

Seeds: 000 §10 (Tabelle 13/14, the log-message catalogue), 002 §5 (the three logbooks, who may
read them) and §9.3 (what reaches the consumer log).

- :mod:`smgw.logbook.catalogue`       every log message of seed 000 Tabelle 13 as an ``EventDef``
                                      (id, level, our German text, parameters, target logs,
                                      action, source); ``event()``, ``format_event()``,
                                      ``markdown()`` (docs/log-catalogue.md)
- :mod:`smgw.logbook.catalogue_data`  the catalogue as data: texts, levels, routing reasons,
                                      Tabelle 14 parameters, seed 002 §9.3 -> id mapping
- :mod:`smgw.logbook.store`           durable entries: timestamp, id, level, status, parameters
- :mod:`smgw.logbook.chain`           signed, chained calibration-log entries and their check

Events are raised with :func:`smgw.events.emit`, which formats them through the catalogue and
hands them to the logbooks attached with :func:`smgw.events.set_sink`.
Submodules are imported where they are used; this package imports nothing.
"""
