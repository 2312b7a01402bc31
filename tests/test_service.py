"""`edgecam service`: install, status and uninstall into a staging root (the real tools, a
temporary directory instead of /), the dry run, and the refusals on a system it cannot manage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import edgecam, read_jsonl, require

import edgecam as edgecam_package
from edgecam.service.install import (
    CONFIG_FILE,
    HIDDEN_TREES,
    JETSON_DROPIN,
    JETSON_RELEASE,
    LOG_FILE,
    SYSUSERS_FILE,
    UNIT_FILE,
    edgecam_command,
    hidden_paths,
    render_config,
    render_unit,
    run_options,
)

SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()


def under(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("edgecam: error: ")
    assert all(word in result.stderr for word in words), result.stderr


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path) -> None:
    result = edgecam("service", "install", "--dry-run", "--root", str(tmp_path), check=True)
    assert result.stdout.splitlines() == [
        f"would write {under(tmp_path, SYSUSERS_FILE)}",
        f"would run systemd-sysusers --root={tmp_path} {under(tmp_path, SYSUSERS_FILE)}",
        f"would write {under(tmp_path, CONFIG_FILE)}",
        f"would write {under(tmp_path, UNIT_FILE)}",
        f"would run systemctl --root={tmp_path} enable edgecam.service",
    ]
    assert list(tmp_path.iterdir()) == []


def test_dry_run_on_this_system_says_what_it_would_do_and_why_it_would_stop() -> None:
    result = edgecam("service", "install", "--dry-run", "--user", "camera", check=True)
    lines = result.stdout.splitlines()
    if os.geteuid() != 0 or not SYSTEMD_RUNNING:
        assert lines.pop(0).startswith("(for real, this would stop here: ")
    assert lines == [
        f"would write {SYSUSERS_FILE}",
        f"would run systemd-sysusers {SYSUSERS_FILE}",
        f"would {'keep' if CONFIG_FILE.exists() else 'write'} {CONFIG_FILE}"
        + (" (pass --config FILE to replace it)" if CONFIG_FILE.exists() else ""),
        f"would write {UNIT_FILE}",
        "would run systemctl daemon-reload",
        "would run systemctl enable edgecam.service",
        "would run systemctl restart --no-block edgecam.service",
    ]


def test_install_refuses_without_root() -> None:
    """As root, the check is seen from a user namespace where this process is not root."""
    command = [sys.executable, "-m", "edgecam", "service", "install"]
    if os.geteuid() == 0:
        command = [require("unshare", "util-linux"), "--user", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    one_line_error(result, 1, "needs root", "sudo")


@pytest.mark.skipif(SYSTEMD_RUNNING, reason="systemd runs here: install would really install")
def test_install_refuses_without_systemd() -> None:
    for action in ("install", "uninstall"):
        one_line_error(edgecam("service", action), 1, "systemd is not running")


def test_install_refuses_a_root_user_and_a_bad_config(tmp_path: Path) -> None:
    one_line_error(edgecam("service", "install", "--root", str(tmp_path), "--user", "root"), 2,
                   "--user", "unprivileged")
    bad = tmp_path / "bad.toml"
    bad.write_text('source = "demo"\nframerate = 30\n')
    one_line_error(edgecam("service", "install", "--root", str(tmp_path), "--config", str(bad)), 2,
                   "unknown key 'framerate'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


@pytest.mark.slow
def test_install_status_uninstall_in_a_staging_root(tmp_path: Path) -> None:
    require("systemd-sysusers", "systemd")  # install and uninstall run both, with --root
    require("systemctl", "systemd")
    root = tmp_path / "root"
    under(root, JETSON_RELEASE).parent.mkdir(parents=True)
    under(root, JETSON_RELEASE).write_text("# R35 (release), REVISION: 4.1\n")
    result = edgecam("service", "install", "--root", str(root), check=True)
    assert "would" not in result.stdout
    # The user, made by the real systemd-sysusers, is in the video group.
    assert "\nedgecam:" in "\n" + under(root, Path("/etc/passwd")).read_text()
    assert any(line.startswith("video:") and line.endswith(":edgecam")
               for line in under(root, Path("/etc/group")).read_text().splitlines())
    assert under(root, CONFIG_FILE).read_text() == render_config(run_options())
    command = edgecam_command()
    exposed = hidden_paths(command)
    assert under(root, UNIT_FILE).read_text() == render_unit(command, "edgecam", exposed)
    # Everything the service runs stays visible through ProtectHome=.
    for needed in (Path(command[0]), Path(sys.executable).resolve(), Path(edgecam_package.__file__)):
        assert (not any(needed.is_relative_to(tree) for tree in HIDDEN_TREES)
                or any(needed.is_relative_to(path) for path in exposed)), needed
    wants = root / "etc/systemd/system/multi-user.target.wants/edgecam.service"
    assert os.readlink(wants) == str(UNIT_FILE)
    assert "nvhost" in under(root, JETSON_DROPIN).read_text()

    # The installed config runs (with the log moved into the staging root), and status shows it.
    log = under(root, LOG_FILE)
    log.parent.mkdir(parents=True)
    edgecam("run", "--config", str(under(root, CONFIG_FILE)), "--frames", "3", "--log", str(log),
            check=True)
    records = read_jsonl(log)
    status = edgecam("service", "status", "--root", str(root), "--lines", "2", check=True)
    shown = status.stdout.splitlines()
    assert shown[0] == f"last predictions in {log}:" and len(shown) == 3
    for line, record in zip(shown[1:], records[-2:], strict=True):
        assert f"frame {record['frame']}" in line and record["top"][0]["label"] in line

    # A reinstall keeps the config the admin edited.
    under(root, CONFIG_FILE).write_text('source = "demo"\nheadless = true\n')
    result = edgecam("service", "install", "--root", str(root), check=True)
    assert f"keep {under(root, CONFIG_FILE)}" in result.stdout
    assert under(root, CONFIG_FILE).read_text() == 'source = "demo"\nheadless = true\n'
    assert "sets no log" in edgecam("service", "status", "--root", str(root), check=True).stdout

    result = edgecam("service", "uninstall", "--root", str(root), check=True)
    assert not under(root, UNIT_FILE).exists() and not wants.is_symlink()
    assert not under(root, JETSON_DROPIN).exists() and not under(root, SYSUSERS_FILE).exists()
    assert under(root, CONFIG_FILE).exists() and log.exists()
    assert result.stdout.splitlines()[-1].startswith("kept: the config")
    one_line_error(edgecam("service", "uninstall", "--root", str(root)), 1, "not installed")


def test_install_imports_a_model_package_into_the_service_cache(tmp_path: Path) -> None:
    """--models FILE: the package goes into the service's model cache (/var/lib/edgecam below the
    root) before the service first starts, so it builds nothing; a bad package is refused before
    any step, with one line."""
    require("systemd-sysusers", "systemd")
    require("systemctl", "systemd")
    from edgecam.service.install import STATE_DIR

    edgecam("models", "build", "efficientnet_lite0", check=True)
    models = tmp_path / "lite0.edgecam.zip"
    edgecam("models", "export", "efficientnet_lite0", "--backends", "onnx", "-o", str(models), check=True)
    root = tmp_path / "root"
    cache = under(root, STATE_DIR)
    dry = edgecam("service", "install", "--dry-run", "--root", str(root), "--models", str(models),
                  check=True)
    assert f"would run EDGECAM_CACHE={cache} " in dry.stdout and f"models import {models}" in dry.stdout
    assert not root.exists()
    bad = tmp_path / "bad.edgecam.zip"
    bad.write_bytes(models.read_bytes()[:1000])
    one_line_error(edgecam("service", "install", "--root", str(root), "--models", str(bad)), 1,
                   "model package", "truncated")
    assert not root.exists()
    edgecam("service", "install", "--root", str(root), "--models", str(models), check=True)
    assert sorted(p.name for p in cache.iterdir()) == ["efficientnet_lite0.onnx",
                                                       "efficientnet_lite0.onnx.json"]
    listed = edgecam("models", "list", "--json", env={"EDGECAM_CACHE": str(cache)}, check=True)
    assert {r["name"]: r["built"] for r in json.loads(listed.stdout)}["efficientnet_lite0"] == ["onnx"]
