"""Meta-tests (datasette's idea): every hook is documented, and every hook has a test."""

import inspect
from pathlib import Path

import pytest

from talkingface.pipeline import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "talkingface_spec")]
TESTS = Path(__file__).parent
README = Path(__file__).parent.parent / "README.md"


def test_there_are_hooks():
    assert {"register_audio_encoders", "register_motion_generators", "register_renderers",
            "register_presets", "call_stage"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert ":param" in doc, f"{hook} docstring must describe its parameters"
    assert "Called" in doc, f"{hook}: say when it is called"
    assert "Example" in doc, f"{hook} docstring needs an example"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    uses = [p for p in TESTS.rglob("*.py") if p.name != "test_docs.py"
            and f"def {hook}(" in p.read_text()]
    assert uses, f"no test implements the {hook} hook"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_the_readme(hook):
    assert hook in README.read_text(), f"README's plugin section should mention {hook}"
