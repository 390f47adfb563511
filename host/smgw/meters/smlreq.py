"""SML requests the gateway sends to a meter it polls (docs/lmn-wired.md §6): one SML file with
``Open.Req, GetList.Req, Close.Req`` in a transport v1 frame. The encoding primitives are the
shared SML encoder's (``smgw.meters.smlencode``, which the meter simulator uses for its answers)."""

from __future__ import annotations

from smgw.meters import smlencode as enc

TAG_OPEN_REQ = 0x0100
TAG_CLOSE_REQ = 0x0200
TAG_GET_LIST_REQ = 0x0700


def get_list_request(server_id: bytes, client_id: bytes, req_file_id: bytes,
                     transaction: int) -> bytes:
    """A complete transport frame asking ``server_id`` for its current registers."""
    ids = [((transaction + k) & 0xFFFFFFFF).to_bytes(4, "big") for k in range(3)]
    open_req = enc.sml_list([
        enc.element(None),             # codepage
        enc.octet(client_id),          # clientId
        enc.octet(req_file_id),        # reqFileId
        enc.octet(server_id),          # serverId
        enc.element(None),             # username
        enc.element(None),             # password
        enc.uint(1, 1),                # smlVersion 1
    ])
    get_list = enc.sml_list([
        enc.octet(client_id),
        enc.octet(server_id),
        enc.element(None),             # username
        enc.element(None),             # password
        enc.element(None),             # listName: the meter's default list
    ])
    close_req = enc.sml_list([enc.element(None)])  # no global signature
    file = b"".join([
        enc.message(ids[0], TAG_OPEN_REQ, open_req, tag_width=4),
        enc.message(ids[1], TAG_GET_LIST_REQ, get_list, tag_width=4),
        enc.message(ids[2], TAG_CLOSE_REQ, close_req, tag_width=4),
    ])
    return enc.transport_frame(file)
