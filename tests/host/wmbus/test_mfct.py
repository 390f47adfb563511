"""Vendor register formats inside OMS telegrams (smgw.wmbus.mfct): Apator 16-2."""

import pytest

from smgw.wmbus.apl import AplError
from smgw.wmbus.mfct import apator162, decoder_for

# decrypted application data of Apator 16-2 telegrams as published with their totals
PLAIN = [
    ("2F2F0F005B599600000010AA55000041545A42850BD800437D037301C5500000564B00009E4600006A41"
     "0000A01778EC03FFFFFFFFFFFFFFFFFFFFFFFFFFE393", "21.930"),
    ("2F2F0F0711229410020043610384 8B745953486C09100000 1081920200 7501F1800200E5640200534A"
     "02003431020080150200D9000200A0DC939703FFFFA434", "168.577"),
    ("2F2F80C84AFD9308020043820183000A5415586302FCA91510F0120000", "4.848"),  # V5's start
]


@pytest.mark.parametrize("hexdata,total", PLAIN)
def test_total_volume_register(hexdata, total):
    (rec,) = apator162(bytes.fromhex(hexdata.replace(" ", "")))
    assert (rec.quantity, rec.unit, rec.value, rec.function) == ("volume", "m3", total,
                                                                 "instantaneous")


def test_only_apator_16_2_gets_the_decoder():
    assert decoder_for("APA", 7, 5) is apator162 and decoder_for("APA", 6, 5) is apator162
    assert decoder_for("APA", 7, 4) is None and decoder_for("ELS", 7, 5) is None


def test_truncated_and_empty_payloads_are_syntax_errors():
    with pytest.raises(AplError):
        apator162(bytes.fromhex("2F2F0F005B"))  # shorter than its header
    with pytest.raises(AplError):
        apator162(bytes.fromhex("2F2F0F005B599600000010AA55"))  # register cut
    with pytest.raises(AplError):
        apator162(bytes.fromhex("2F2F0F005B5996000000FF"))  # no total at all
