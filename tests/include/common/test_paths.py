from __future__ import annotations

import pytest

from include.common.errors import ConfigurationError
from include.common.paths import data_root


def test_explicit_value_wins_and_areas_are_created(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(tmp_path / "from-env"))
    root = data_root(tmp_path / "explicit")
    assert root == (tmp_path / "explicit").resolve()
    assert sorted(p.name for p in root.iterdir()) == ["out", "raw", "work"]


def test_environment_is_the_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("CLAIMSFLOW_DATA_DIR", str(tmp_path / "from-env"))
    assert data_root(None) == (tmp_path / "from-env").resolve()
    assert data_root("") == (tmp_path / "from-env").resolve()


def test_unusable_root_names_the_path(tmp_path):
    blocker = tmp_path / "root"
    blocker.write_text("a file where the data root should be")
    with pytest.raises(ConfigurationError) as err:
        data_root(blocker)
    assert str(blocker) in str(err.value)
