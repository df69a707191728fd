"""Policy reloads: picked up when the files change, never taking effect when invalid."""

import os
import shutil
from pathlib import Path

from scheduler.daemon.policy_source import PolicySource

REAL = Path(__file__).resolve().parents[2] / "policies"


def configmap_mount(root: Path, version: str, files: dict[str, str]) -> None:
    """Lay out a folder as the kubelet mounts a ConfigMap, swapping ..data atomically."""
    target = root / f"..{version}"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(target.name)
    os.replace(tmp, root / "..data")
    for name in files:
        link = root / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def real_files():
    return {p.name: p.read_text() for p in REAL.glob("*.yaml")}


def test_a_policy_is_loaded_once_and_reloaded_only_when_its_content_changes(tmp_path):
    shutil.copytree(REAL, tmp_path / "p")
    source = PolicySource(tmp_path / "p")
    assert source.reload().changed and source.valid
    assert not source.reload().changed
    stages = tmp_path / "p" / "stages.yaml"
    stages.write_text(stages.read_text().replace("skt: {B200: 512}", "skt: {B200: 256}"))
    assert source.reload().changed


def test_an_invalid_policy_never_takes_effect_and_the_last_good_one_stays(tmp_path):
    shutil.copytree(REAL, tmp_path / "p")
    source = PolicySource(tmp_path / "p")
    source.reload()
    good = source.policy.sha256
    (tmp_path / "p" / "typo.yaml").write_text(
        "apiVersion: gpu-scheduler.sovereign-ai.kr/v1\nkind: Stage\nmetadata: {name: x}\nspec: {start: 2027-02-30, eligible: pending}\n")
    result = source.reload()
    assert not result.changed and result.error is not None
    assert "typo.yaml:4" in str(result.error)
    assert source.policy.sha256 == good and not source.valid and source.reload_errors == 1
    (tmp_path / "p" / "typo.yaml").unlink()
    assert not source.reload().changed  # back to the same good policy: nothing new takes effect
    assert source.valid and source.policy.sha256 == good


def test_a_configmap_symlink_swap_is_picked_up(tmp_path):
    files = real_files()
    configmap_mount(tmp_path, "2026_11_30_06_00_00.1", files)
    source = PolicySource(tmp_path)
    assert source.reload().changed
    before = source.policy.sha256
    files["stages.yaml"] = files["stages.yaml"].replace("skt: {B200: 512}", "skt: {B200: 384}")
    configmap_mount(tmp_path, "2026_11_30_07_00_00.2", files)
    assert source.reload().changed and source.policy.sha256 != before


def test_no_policy_yet_is_not_valid(tmp_path):
    source = PolicySource(tmp_path / "missing")
    result = source.reload()
    assert result.error is not None and source.policy is None and not source.valid
