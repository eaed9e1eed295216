"""Output paths are checked before any work: folders, unwritable places, files in the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from topology.atomic_io import PROBE_PREFIX, check_output_file, check_output_folder, write_text_atomic
from topology.errors import LayerwiseError


def error_of(call, *args) -> LayerwiseError:  # type: ignore[no-untyped-def]
    with pytest.raises(LayerwiseError) as info:
        call(*args)
    return info.value


def test_a_writable_file_path_passes_and_leaves_nothing_behind(tmp_path: Path) -> None:
    assert check_output_file(tmp_path / "r.json", "--json") == tmp_path / "r.json"
    assert check_output_file(tmp_path / "new" / "deeper" / "r.json", "--json") == tmp_path / "new" / "deeper" / "r.json"
    (tmp_path / "old.json").write_text("{}")
    check_output_file(tmp_path / "old.json", "--json")  # an existing file is overwritten later
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # no probe, no folder made


@pytest.mark.parametrize("path", [".", "./", "/tmp"])
def test_a_folder_is_not_a_file(path: str) -> None:
    err = error_of(check_output_file, path, "--json")
    assert err.field == "--json" and "is a folder" in err.message and repr(path) in err.message


def test_an_unwritable_place_is_named_before_the_work() -> None:
    err = error_of(check_output_file, "/proc/nope/r.json", "--json")
    assert err.field == "--json" and "'/proc/nope/r.json'" in err.message and "cannot write" in err.message


def test_a_file_in_the_way_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    err = error_of(check_output_file, tmp_path / "f" / "r.json", "--out")
    assert err.field == "--out" and "is not a folder" in err.message
    err = error_of(check_output_folder, tmp_path / "f", "--out")
    assert err.field == "--out" and "is a file, not a folder" in err.message


def test_a_folder_path_passes_when_it_can_be_made(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "report", "--out") == tmp_path / "report"
    assert not (tmp_path / "report").exists()
    assert not any(p.name.startswith(PROBE_PREFIX) for p in tmp_path.iterdir())
    err = error_of(check_output_folder, "/proc/nope", "--out")
    assert err.field == "--out" and "cannot write" in err.message


def test_writing_onto_a_folder_is_one_line_not_device_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = error_of(write_text_atomic, ".", "x")
    assert err.field == "output" and "is a folder" in err.message
