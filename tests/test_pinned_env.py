"""tests/pinned_env.py fails, never skips, when pip cannot install the pins."""

import pytest

import pinned_env


def test_an_uninstallable_pin_fails_the_test_with_pips_words(tmp_path, monkeypatch):
  monkeypatch.setattr(pinned_env, "CACHE", tmp_path)
  monkeypatch.setattr(pinned_env, "PINS", ("transformers==0.0.404",))
  with pytest.raises(pytest.fail.Exception, match="transformers==0.0.404") as err:
    pinned_env.pinned_python()
  assert "pip said" in str(err.value)
  # Nothing that looks like a usable environment is left behind.
  assert not list(tmp_path.glob("*/complete"))
