"""Delivery of protected messages to market participants (EMTs) over the WAN.

- :mod:`smgw.wan.outbox` — the durable queue of messages (the store's ``deliveries`` table);
- :mod:`smgw.wan.push` — one HTTPS POST with mutual TLS authentication;
- :mod:`smgw.wan.delivery` — the worker that pushes due messages, retries with back-off and
  logs 10165 / 10269;
- :mod:`smgw.wan.emtserver` — a test EMT that receives, verifies and records what it gets.

See docs/emt-delivery.md.
"""
