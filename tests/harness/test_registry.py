import sys

import pytest

from harness.errors import RegistryError
from harness.registry import Registry


def test_lazy_entry_is_not_imported_until_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_target_mod.py").write_text("IMPORTED = True\nVALUE = 41 + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing")
    reg.register("answer", "lazy_target_mod:VALUE")
    assert "lazy_target_mod" not in sys.modules
    assert "answer" in reg.names()
    assert "lazy_target_mod" not in sys.modules
    assert reg.get("answer") == 42
    assert "lazy_target_mod" in sys.modules


def test_duplicate_name_is_an_error_naming_both_places():
    reg = Registry("method")
    reg.register("deop", "a.b:C")
    with pytest.raises(RegistryError) as err:
        reg.register("deop", "x.y:Z")
    msg = str(err.value)
    assert "registered twice" in msg and "a.b:C" in msg and "x.y:Z" in msg and "test_registry.py" in msg


def test_unknown_name_suggests_close_matches_and_lists_all():
    reg = Registry("method")
    for name in ("baseline", "baseline+", "deop", "simbaseline"):
        reg.register(name, f"m:{name.replace('+', 'p')}")
    with pytest.raises(RegistryError) as err:
        reg.get("deopp")
    msg = str(err.value)
    assert "unknown method 'deopp'" in msg
    assert "Did you mean 'deop'" in msg
    assert "Known methods: baseline, baseline+, deop, simbaseline." in msg


def test_origin_names_target_and_registration_site():
    reg = Registry("dataset")
    reg.register("voc", "harness.x:VOC")
    origin = reg.origin("voc")
    assert origin.startswith("harness.x:VOC (registered at ")
    assert "test_registry.py:" in origin


def test_bad_target_is_rejected_at_registration():
    reg = Registry("task")
    with pytest.raises(RegistryError, match="package.module:attribute"):
        reg.register("t", "no_colon_here")


def test_plugin_modules_register_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "my_plugin_mod.py").write_text(
        "from harness.registry import Registry\nimport reg_holder\nreg_holder.REG.register('p1', 'math:pi')\n"
    )
    (tmp_path / "reg_holder.py").write_text("from harness.registry import Registry\nREG = Registry('thing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import reg_holder

    reg_holder.REG._plugins = ("my_plugin_mod",)
    assert "my_plugin_mod" not in sys.modules
    assert reg_holder.REG.names() == ["p1"]
    assert abs(reg_holder.REG.get("p1") - 3.14159) < 1e-4


def test_unimportable_user_plugin_says_which(monkeypatch):
    from harness.registry import BROKEN_PLUGINS

    monkeypatch.setenv("HARNESS_PLUGINS", "no_such_plugin_module_xyz")
    monkeypatch.setattr("harness.registry.BROKEN_PLUGINS", {})
    from harness import registry

    reg = Registry("method")
    reg.register("fine", "math:pi")
    assert reg.names() == ["fine"]  # isolated: the other entries stay usable
    assert "no_such_plugin_module_xyz" in next(iter(registry.BROKEN_PLUGINS))
    with pytest.raises(RegistryError, match=r"no_such_plugin_module_xyz \(HARNESS_PLUGINS\) failed to import: "
                                            r"ModuleNotFoundError"):
        reg.get("what-it-would-have-added")
    assert BROKEN_PLUGINS is not registry.BROKEN_PLUGINS
