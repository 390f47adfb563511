"""The HAN interface: HTTPS for consumers and service technicians (docs/han.md).

The core (this package's ``server``, ``tlsconf``, ``digest``, ``accounts``, ``sessions``,
``auth``, ``data``) serves nothing by itself: faces register their routes on it with
:meth:`smgw.han.server.HanServer.add_face` and use the :class:`smgw.han.auth.HanContext` they
are handed to authenticate requests and to read the gateway's data.
"""
