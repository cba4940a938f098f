"""The artifact settings: SYNAPSEX_ARTIFACT_ROOT and SYNAPSEX_ARTIFACT_MAX_BYTES."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapsex.config import ConfigError
from synapsex.config.settings import DEFAULT_ARTIFACT_MAX_BYTES, Settings
from synapsex.contracts import workspaces


def test_defaults_are_the_data_folder_and_25_mib():
    settings = Settings.from_env({"SYNAPSEX_DATA_DIR": "/srv/sx"})
    assert settings.artifact_dir == Path("/srv/sx/artifacts")
    assert settings.artifact_max_bytes == 25 * 1024 * 1024
    assert DEFAULT_ARTIFACT_MAX_BYTES == workspaces.DEFAULT_ARTIFACT_MAX_BYTES
    assert settings.with_data_dir("/elsewhere").artifact_dir == Path("/elsewhere/artifacts")


@pytest.mark.parametrize(
    ("text", "size"),
    [("26214400", 26214400), ("512KiB", 524288), ("25MiB", 26214400), ("1 GiB", 1024**3)],
)
def test_sizes_are_bytes_or_binary_units(text, size):
    env = {"SYNAPSEX_ARTIFACT_MAX_BYTES": text, "SYNAPSEX_ARTIFACT_ROOT": "/data/blobs"}
    settings = Settings.from_env(env)
    assert settings.artifact_max_bytes == size
    assert settings.artifact_dir == Path("/data/blobs")


@pytest.mark.parametrize("text", ["0", "-1", "25MB", "lots", "2GiB", "1.5MiB"])
def test_a_bad_size_names_the_variable(text):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SYNAPSEX_ARTIFACT_MAX_BYTES": text})
    assert err.value.variable == "SYNAPSEX_ARTIFACT_MAX_BYTES"
