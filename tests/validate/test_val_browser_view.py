"""The browser check's pure parts: the headless command and cutting a screenshot into tiles."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from topology.errors import LayerwiseError
from validate.report.browser_view import browser_command, content_height, cut_tiles, may_be_cut, render, window_heights


def test_the_browser_runs_headless_with_nothing_fetched(tmp_path: Path) -> None:
    command = browser_command("chromium", tmp_path / "report.html", tmp_path / "x.png", tmp_path / "p", 1400, 9000)
    assert command[:2] == ["chromium", "--headless"]
    for flag in ("--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"):
        assert flag in command
    assert f"--user-data-dir={tmp_path / 'p'}" in command and "--window-size=1400,9000" in command
    assert command[-1] == (tmp_path / "report.html").resolve().as_uri()


def test_screenshot_is_cut_to_its_content_then_into_tiles(tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    image = Image.new("RGB", (80, 400), "white")
    for col in range(10, 70):
        image.putpixel((col, 119), (0, 0, 0))  # the last thing on the page: row 119
    image.save(shot)
    assert content_height(shot) == 120
    tiles = cut_tiles(shot, tmp_path, 50)
    assert [t.name for t in tiles] == ["tile-01.png", "tile-02.png", "tile-03.png"]
    assert [Image.open(t).size for t in tiles] == [(80, 50), (80, 50), (80, 20)]
    assert Image.open(tmp_path / "page.png").size == (80, 120)


def test_a_blank_page_or_a_missing_file_is_one_line(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (20, 20), "white").save(blank)
    with pytest.raises(LayerwiseError, match="blank"):
        cut_tiles(blank, tmp_path, 10)
    with pytest.raises(LayerwiseError, match="no such file"):
        render(tmp_path / "missing.html", tmp_path / "out")


def test_a_page_reaching_the_window_bottom_is_laid_out_again_taller(tmp_path: Path) -> None:
    """A report laid out in a 16,000 px window ended 16 px above its bottom: it had been cut there."""
    assert window_heights(16000, 64000) == [16000, 32000, 64000]
    assert window_heights(16000, 40000) == [16000, 32000, 40000]
    shot = tmp_path / "shot.png"
    image = Image.new("RGB", (40, 1000), "white")
    image.putpixel((20, 983), (0, 0, 0))  # content down to row 984 of a 1000-row window
    image.save(shot)
    assert may_be_cut(shot, 1000)
    assert not may_be_cut(shot, 2000)
