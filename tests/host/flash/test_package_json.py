"""The committed mip package files are exactly what tools/package_json.py generates now, so the
list of firmware files in them can never drift from the files themselves."""

from __future__ import annotations

import json

import package_json  # tools/package_json.py (tests/conftest.py puts tools/ on sys.path)
import pytest

from smgw.flash.build import FIRMWARE_DEPS, REPO
from smgw.flash.deploy import firmware_version

FILES = package_json.generate(REPO)


@pytest.mark.parametrize("path", sorted(FILES), ids=lambda p: str(p.relative_to(REPO)))
def test_committed_file_is_current(path) -> None:
    assert path.exists(), f"{path} missing: run `python tools/package_json.py`"
    assert path.read_text(encoding="utf-8") == FILES[path], (
        f"{path.relative_to(REPO)} is out of date: run `python tools/package_json.py`")


def test_every_url_exists_and_every_module_is_listed() -> None:
    pkg = json.loads((REPO / "package.json").read_text())
    urls = dict(pkg["urls"])
    for target, url in urls.items():
        assert (REPO / url).is_file(), url
    modules = sorted((REPO / "firmware/smgwfw").glob("*.py"))
    assert {f"lib/smgwfw/{p.name}" for p in modules} | {"main.py"} == set(urls)
    assert urls["main.py"] == "firmware/main.py"
    assert pkg["version"] == firmware_version()
    assert pkg["deps"] == [[d.partition("@")[0], d.partition("@")[2] or "latest"]
                           for d in FIRMWARE_DEPS]


def test_a_package_for_every_device_board() -> None:
    boards = sorted(p.parent.name for p in REPO.glob("boards/*/board.py")
                    if p.read_text().splitlines()[0] != "# cpython-only")
    assert {"pico", "esp32"} <= set(boards)
    for name in boards:
        path = REPO / "boards" / name / "package.json"
        pkg = json.loads(path.read_text())
        assert pkg["urls"] == [["board.py", "board.py"]]
        for _, url in pkg["urls"]:
            assert (path.parent / url).is_file()
    assert not (REPO / "boards/sim/package.json").exists()


def test_check_mode(tmp_path, capsys) -> None:
    assert package_json.main(["--check"]) == 0
    # a copy of the repo's inputs with a new module: --check fails, a write fixes it
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "firmware", repo / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "boards", repo / "boards",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "package.json", repo / "package.json")
    (repo / "firmware/smgwfw/newmod.py").write_text("X = 1\n")
    assert package_json.main(["--repo", str(repo), "--check"]) == 1
    assert "package.json" in capsys.readouterr().err
    assert package_json.main(["--repo", str(repo)]) == 0
    assert package_json.main(["--repo", str(repo), "--check"]) == 0
    assert ["lib/smgwfw/newmod.py", "firmware/smgwfw/newmod.py"] in json.loads(
        (repo / "package.json").read_text())["urls"]
