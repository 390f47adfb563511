"""SNTP client against a real UDP NTP server on 127.0.0.1 that can be told to lie."""

from __future__ import annotations

import struct
import time

import pytest
from lying_ntp_server import LyingNtpServer, free_udp_port

from smgw.legaltime.sntp import (
    SntpSource,
    TimeSource,
    TimeSourceError,
    ntp_to_unix,
    unix_to_ntp,
)


@pytest.fixture
def server():
    with LyingNtpServer() as srv:
        yield srv


def source(srv: LyingNtpServer, timeout: float = 2.0) -> SntpSource:
    return SntpSource("127.0.0.1", srv.port, timeout=timeout)


def failure(srv: LyingNtpServer, timeout: float = 2.0) -> TimeSourceError:
    with pytest.raises(TimeSourceError) as err:
        source(srv, timeout).query()
    return err.value


def test_good_answer_and_request_layout(server):
    sample = source(server).query()
    assert abs(sample.offset_s) < 1.0
    assert sample.delay_s >= 0
    assert sample.stratum == 2
    assert sample.server == f"127.0.0.1:{server.port}"
    assert sample.at_monotonic <= time.monotonic()
    assert sample.server_time_s == pytest.approx(time.time(), abs=1.0)
    req = server.requests[0].data
    assert len(req) == 48
    assert req[0] == 0b00_100_011  # LI 0, version 4, mode 3 (client)
    # the transmit field is a random nonce, not the send time, and differs per query
    source(server).query()
    assert req[40:48] != server.requests[1].data[40:48]


def test_offset_follows_a_skewed_server(server):
    server.lie.skew_s = 3600.0
    sample = source(server).query()
    assert sample.offset_s == pytest.approx(3600.0, abs=1.0)
    assert sample.server_time_s == pytest.approx(time.time() + 3600.0, abs=1.0)
    server.lie.skew_s = -42.5
    assert source(server).query().offset_s == pytest.approx(-42.5, abs=1.0)


def test_wrong_originate_is_bogus(server):
    server.lie.wrong_origin = True
    err = failure(server, timeout=0.3)
    assert err.code == "bogus" and "originate" in str(err)


def test_spoofed_packet_does_not_hide_the_real_answer(server):
    server.lie.spoof_first = True
    server.lie.skew_s = 10.0
    assert source(server).query().offset_s == pytest.approx(10.0, abs=1.0)


@pytest.mark.parametrize(("mode", "version"), [(3, 4), (5, 4), (4, 2), (4, 7)])
def test_wrong_mode_or_version_is_bogus(server, mode, version):
    server.lie.mode, server.lie.version = mode, version
    assert failure(server).code == "bogus"


def test_version_3_server_is_accepted(server):
    server.lie.version = 3
    assert source(server).query().stratum == 2


@pytest.mark.parametrize("kiss", ["RATE", "DENY", "RSTR"])
def test_kiss_o_death_reports_the_kiss_code(server, kiss):
    server.lie.kiss = kiss
    err = failure(server)
    assert err.code == "kiss" and err.kiss_code == kiss and kiss in str(err)


def test_leap_indicator_3_is_unsynchronised(server):
    server.lie.li = 3
    assert failure(server).code == "unsynchronised"


def test_stratum_16_is_unsynchronised(server):
    server.lie.stratum = 16
    assert failure(server).code == "unsynchronised"


def test_leap_second_warning_is_accepted(server):
    server.lie.li = 1  # last minute of the day has 61 s: still a good answer
    assert source(server).query().stratum == 2


def test_truncated_answer_is_short(server):
    server.lie.truncate = 40  # originate field intact, the rest cut off
    assert failure(server).code == "short"


def test_answer_cut_before_originate_is_short_after_the_timeout(server):
    server.lie.truncate = 20
    assert failure(server, timeout=0.3).code == "short"


def test_extension_fields_are_ignored_but_odd_lengths_rejected(server):
    server.lie.append = struct.pack("!I", 1) + bytes(16)  # key id + MD5 MAC
    assert source(server).query().stratum == 2
    server.lie.append = b"\x00"
    assert failure(server).code == "bogus"


def test_no_answer_is_timeout(server):
    server.lie.silent = True
    assert failure(server, timeout=0.3).code == "timeout"
    assert len(server.requests) == 1


def test_zero_transmit_timestamp_is_bogus(server):
    server.lie.zero_transmit = True
    assert failure(server).code == "bogus"


def test_insane_root_dispersion_is_bogus(server):
    server.lie.root_dispersion_s = 5.0
    assert "root distance" in str(failure(server))
    server.lie.root_dispersion_s, server.lie.root_delay_s = 0.001, 4.0
    assert failure(server).code == "bogus"


def test_negative_round_trip_is_bogus(server):
    server.lie.claimed_hold_s = 10.0  # claims to have held the request 10 s
    err = failure(server)
    assert err.code == "bogus" and "negative" in str(err)


def test_port_unreachable_is_network():
    err = pytest.raises(TimeSourceError, SntpSource("127.0.0.1", free_udp_port()).query)
    assert err.value.code == "network"


def test_timestamp_conversion_and_era():
    t = 1_750_000_000.25
    assert ntp_to_unix(unix_to_ntp(t)) == pytest.approx(t, abs=1e-6)
    after_2036 = 2_100_000_000.5  # NTP seconds wrap to era 1 on 2036-02-07
    assert ntp_to_unix(unix_to_ntp(after_2036)) == pytest.approx(after_2036, abs=1e-6)


def test_sntp_source_is_a_time_source():
    assert isinstance(SntpSource("127.0.0.1"), TimeSource)
