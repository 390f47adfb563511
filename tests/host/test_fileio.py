"""Atomic small-file writes (smgw.fileio): the new content or the old one, never a mix."""

import os
import stat

import pytest

from smgw.fileio import atomic_write


def test_content_mode_and_no_leftovers(tmp_path):
    p = tmp_path / "sub" / "state.json"
    atomic_write(p, b"one", 0o600)
    assert p.read_bytes() == b"one" and stat.S_IMODE(os.stat(p).st_mode) == 0o600
    atomic_write(p, b"two")
    assert p.read_bytes() == b"two" and stat.S_IMODE(os.stat(p).st_mode) == 0o644
    assert sorted(x.name for x in p.parent.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    p = tmp_path / "state.json"
    atomic_write(p, b"old")

    with pytest.raises(TypeError):  # the write fails half-way (here: not bytes at all)
        atomic_write(p, "new")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]
