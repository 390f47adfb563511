"""Legal time of the gateway: an SNTP client for the GWA's time service and the legal clock.

:mod:`smgw.legaltime.sntp` asks a time server (RFC 4330 / RFC 5905 client mode) and checks its
answer; :mod:`smgw.legaltime.clock` keeps the gateway's legal time, decides when it is valid
(power loss longer than the RTC bridges, 36 h without synchronisation, corrections above 3 % of
the smallest registration period) and emits the catalogue events 10041, 10067, 10068, 10069,
10071, 10072 and 10073. Rules, events and parameters: ``docs/legal-time.md``.
"""
