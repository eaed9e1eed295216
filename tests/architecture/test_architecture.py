"""The structure the architecture issue set, held in CI: no import cycles among the project's modules
(lazy and TYPE_CHECKING imports count), the profile loaded in at most two places, every command
module under layerwise/commands, and a planted cycle is caught (so the check can fail)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from import_graph import call_sites, cycles, import_graph, modules

ROOT = Path(__file__).resolve().parents[2]


def test_no_module_needs_another_that_needs_it() -> None:
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_a_planted_cycle_is_caught(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import f\n")
    (tmp_path / "pkg" / "b.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pkg.c import C
        def f():
            return 1
    """))
    (tmp_path / "pkg" / "c.py").write_text("def g():\n    from pkg import a  # lazy, still a need\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) == [["pkg.a", "pkg.b", "pkg.c"]]
    (tmp_path / "pkg" / "c.py").write_text("def g():\n    return 2\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) == []


def test_the_profile_is_loaded_in_at_most_two_places() -> None:
    sites = [s for s in call_sites(ROOT, "load_profile") if not s.startswith("topology/profile.py")]
    assert len(sites) <= 2, sites  # the resolver (sim/inputs.py) and calibrate --plot-only


def test_command_modules_live_under_layerwise_commands() -> None:
    argparse_users = [name for name, path in modules(ROOT).items()
                      if "def add_arguments(" in path.read_text(encoding="utf-8")]
    assert argparse_users and all(name.startswith("layerwise.commands.") for name in argparse_users), argparse_users
