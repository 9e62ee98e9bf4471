"""Plugins from installed distributions' entry points (group ``deop_harness.plugins``), besides HARNESS_PLUGINS:
a distribution is written as a dist-info into a directory on the path (what pip install leaves), no install
needed. A plugin that fails to import is named with its error; the others stay usable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from harness import registry
from harness.errors import RegistryError
from harness.registry import Registry


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "ep_good_plug").mkdir(parents=True)
    (site / "ep_good_plug" / "__init__.py").write_text("import sys\nsys.modules[__name__].LOADED = True\n")
    (site / "ep_broken_plug").mkdir()
    (site / "ep_broken_plug" / "__init__.py").write_text('raise RuntimeError("boom at import")\n')
    info = site / "ep_good_plug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-good-plug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[deop_harness.plugins]\ngood = ep_good_plug\nbroken = ep_broken_plug\n")
    return site


def test_entry_point_plugins_load_and_a_broken_one_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(_site(tmp_path)))
    monkeypatch.setattr(registry, "BROKEN_PLUGINS", {})
    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)
    reg = Registry("thing")
    reg.register("fine", "math:pi")
    assert reg.names() == ["fine"]  # the broken plugin does not take the others down
    assert sys.modules["ep_good_plug"].LOADED  # imported through its entry point
    label = "broken (entry point of ep-good-plug: ep_broken_plug)"
    assert registry.BROKEN_PLUGINS == {label: "RuntimeError: boom at import"}
    with pytest.raises(RegistryError, match=r"unknown thing 'its-method'.*broken \(entry point of ep-good-plug: "
                                            r"ep_broken_plug\) failed to import: RuntimeError: boom at import"):
        reg.get("its-method")  # what a suite naming one of its methods gets
    from harness.commands import list as list_command

    monkeypatch.setattr("harness.registry.BROKEN_PLUGINS", registry.BROKEN_PLUGINS)
    list_command.run(argparse.Namespace(kind="tasks", origin=False))
    out = capsys.readouterr().out
    assert f"broken plugins:\n  {label}: RuntimeError: boom at import" in out and "segmentation" in out
    sys.modules.pop("ep_good_plug", None)
