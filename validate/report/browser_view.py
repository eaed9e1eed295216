"""Render a report page in a headless browser and cut the screenshot into tiles to look at.

    python -m validate.report.browser_view results/report-h100x1/report.html --out /tmp/report-view

Writes ``page.png`` (the whole page as the browser laid it out, trailing blank space cut) and
``tile-01.png``, ``tile-02.png``, ... of at most ``--tile-height`` pixels each, small enough
for an image viewer. Needs Chromium (Debian: ``apt-get install chromium``) and Pillow (a
matplotlib dependency, so the ``report`` extra has it). A check for eyes, not a test: what a
browser shows (legends over bars, unreadable axis labels, empty columns) is only seen there.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from topology.errors import LayerwiseError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH_PX = 1400
PAGE_HEIGHT_PX = 16000  # the window the page is first laid out in; the screenshot is cut to its content
MAX_PAGE_HEIGHT_PX = 64000  # a page whose content still reaches the window's bottom here is refused
CUT_MARGIN_PX = 400  # content this close to the window's bottom may go on below it: lay out again, twice as tall
TILE_HEIGHT_PX = 1600
TIMEOUT_S = 120
WHITE_LEVEL = 250  # a row whose darkest pixel is at least this light counts as blank


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise LayerwiseError("browser", f"none of {', '.join(BROWSERS)} is installed (Debian: apt-get install chromium)")


def browser_command(browser: str, page: Path, png: Path, profile_dir: Path, width_px: int, height_px: int
                    ) -> list[str]:
    """A headless screenshot with nothing fetched from the network and no state kept."""
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile_dir}", f"--screenshot={png}",
            f"--window-size={width_px},{height_px}", page.resolve().as_uri()]


def content_height(png: Path) -> int:
    """Rows down to the last one with anything on it (the page is laid out in a taller window)."""
    from PIL import Image

    with Image.open(png) as image:
        grey = image.convert("L")
        width, height = grey.size
        pixels = grey.load()
        assert pixels is not None
        for row in range(height - 1, -1, -1):
            if min(pixels[col, row] for col in range(0, width, 4)) < WHITE_LEVEL:  # type: ignore[call-overload]
                return row + 1
    return 0


def cut_tiles(png: Path, out: Path, tile_height_px: int) -> list[Path]:
    """``png`` cut to its content, saved as ``page.png`` and as tiles of ``tile_height_px`` rows."""
    from PIL import Image

    bottom = content_height(png)
    if bottom == 0:
        raise LayerwiseError("page", f"{png} is blank: the browser rendered nothing")
    tiles = []
    with Image.open(png) as image:
        page = image.crop((0, 0, image.width, bottom))
        page.save(out / "page.png")
        for index, top in enumerate(range(0, bottom, tile_height_px), start=1):
            path = out / f"tile-{index:02d}.png"
            page.crop((0, top, page.width, min(top + tile_height_px, bottom))).save(path)
            tiles.append(path)
    return tiles


def window_heights(first_px: int = PAGE_HEIGHT_PX, most_px: int = MAX_PAGE_HEIGHT_PX) -> list[int]:
    """The window heights tried in turn: each twice the last, up to ``most_px``."""
    heights = [first_px]
    while heights[-1] < most_px:
        heights.append(min(2 * heights[-1], most_px))
    return heights


def may_be_cut(png: Path, window_height_px: int) -> bool:
    """Whether the content reaches so near the window's bottom that the page may go on below it
    (a report taller than the window is cut there without a sign)."""
    return content_height(png) > window_height_px - CUT_MARGIN_PX


def render(page: Path, out: Path, tile_height_px: int = TILE_HEIGHT_PX) -> list[Path]:
    if not page.is_file():
        raise LayerwiseError("page", f"no such file: {page}")
    out.mkdir(parents=True, exist_ok=True)
    browser = find_browser()
    with tempfile.TemporaryDirectory() as scratch:
        shot = Path(scratch) / "shot.png"
        for height_px in window_heights():
            shot.unlink(missing_ok=True)
            done = subprocess.run(browser_command(browser, page, shot, Path(scratch) / "profile", WIDTH_PX, height_px),
                                  capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
            if not shot.is_file():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise LayerwiseError("browser", f"{browser} wrote no screenshot (exit {done.returncode}): {last}")
            if not may_be_cut(shot, height_px):
                return cut_tiles(shot, out, tile_height_px)
        raise LayerwiseError("page", f"{page} is taller than {MAX_PAGE_HEIGHT_PX} px: its screenshot would be cut")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validate.report.browser_view", description=__doc__.split("\n")[0])
    parser.add_argument("page", help="the report.html to render")
    parser.add_argument("--out", required=True, help="folder for page.png and its tiles")
    parser.add_argument("--tile-height", type=int, default=TILE_HEIGHT_PX, help="rows per tile (pixels)")
    args = parser.parse_args(argv)
    try:
        tiles = render(Path(args.page), Path(args.out), args.tile_height)
    except LayerwiseError as exc:
        print(f"browser_view: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {Path(args.out) / 'page.png'} and {len(tiles)} tiles: {', '.join(t.name for t in tiles)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
