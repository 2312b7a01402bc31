"""The shipped unit and config: systemd accepts the unit, rates its sandbox "OK" (≤ 2.0), and the
sandbox still leaves the service its camera, model cache and log; the example config documents
every option of `edgecam run` and runs as it is."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, require

from edgecam.base import options
from edgecam.service.install import (
    EXAMPLE_COMMAND,
    LOG_FILE,
    SERVICE_VALUES,
    STATE_DIR,
    USER,
    edgecam_command,
    render_config,
    render_unit,
    run_options,
)

UNIT = ROOT / "systemd" / "edgecam.service"
CONFIG = ROOT / "systemd" / "edgecam.toml"
MAX_EXPOSURE = 2.0


def systemd_analyze(*args: str) -> subprocess.CompletedProcess:
    program = require("systemd-analyze", "systemd")
    return subprocess.run([program, *args], capture_output=True, text=True, timeout=60, check=False)


def directives(unit: str) -> list[tuple[str, str]]:
    """(key, value) of every line of a unit, in order; keys repeat (DeviceAllow=)."""
    return [tuple(line.split("=", 1)) for line in unit.splitlines()
            if "=" in line and not line.startswith(("#", ";"))]


def values(unit: str, key: str) -> list[str]:
    return [v for k, v in directives(unit) if k == key]


def test_shipped_unit_is_the_rendered_unit() -> None:
    assert UNIT.read_text() == render_unit(EXAMPLE_COMMAND, USER), (
        "systemd/edgecam.service is out of date: write render_unit(EXAMPLE_COMMAND, USER) to it")


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """verify insists that ExecStart's program exists, and /opt/edgecam/bin/edgecam (where the
    README installs it) does not here: verify the same unit started by this venv's edgecam."""
    unit = tmp_path / "edgecam.service"
    unit.write_text(UNIT.read_text().replace(" ".join(EXAMPLE_COMMAND) + " ",
                                             " ".join(edgecam_command()) + " "))
    assert values(unit.read_text(), "ExecStart")[0].startswith(edgecam_command()[0])
    result = systemd_analyze("verify", str(unit))
    assert result.returncode == 0 and not result.stderr, result.stderr  # warnings count too


def exposure(unit: Path) -> float:
    result = systemd_analyze("security", "--offline=true", f"--threshold={MAX_EXPOSURE * 10:.0f}",
                             str(unit))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert result.returncode == 0, f"above the threshold:\n{result.stdout}"
    return float(found.group(1))


def test_sandbox_is_rated_ok() -> None:
    assert exposure(UNIT) <= MAX_EXPOSURE


def test_sandbox_stays_ok_for_an_edgecam_installed_in_a_home(tmp_path: Path) -> None:
    """A venv under /home (the usual Pi setup) is bound back into the service read-only."""
    unit_text = render_unit(["/home/pi/venv/bin/edgecam"], "pi", [Path("/home/pi/venv")])
    assert values(unit_text, "ProtectHome") == ["tmpfs"]
    assert values(unit_text, "BindReadOnlyPaths") == ["/home/pi/venv"]
    unit = tmp_path / "edgecam.service"
    unit.write_text(unit_text)
    assert exposure(unit) <= MAX_EXPOSURE


def test_sandbox_leaves_camera_cache_and_log_reachable() -> None:
    """What systemd would need to let through for the run to work: the config's log below
    LogsDirectory=, the model cache ($EDGECAM_CACHE) in StateDirectory=, the camera devices."""
    unit = UNIT.read_text()
    assert values(unit, "ProtectSystem") == ["strict"]  # so only these directories are writable:
    assert values(unit, "StateDirectory") == ["edgecam"]
    assert "EDGECAM_CACHE=%S/edgecam" in values(unit, "Environment")  # %S is /var/lib
    assert Path("/var/lib/edgecam") == STATE_DIR
    assert values(unit, "LogsDirectory") == ["edgecam"]
    assert LOG_FILE.parent == Path("/var/log/edgecam") and SERVICE_VALUES["log"] == str(LOG_FILE)
    assert values(unit, "ConfigurationDirectory") == ["edgecam"]
    assert values(unit, "SupplementaryGroups") == ["video"]
    assert values(unit, "DevicePolicy") == ["closed"]
    assert set(values(unit, "DeviceAllow")) == {"char-video4linux rw", "char-media rw",
                                                "char-dma_heap rw"}
    assert values(unit, "PrivateDevices") == []  # would hide the camera
    assert values(unit, "MemoryDenyWriteExecute") == []  # would break torch (the model build)
    assert values(unit, "Type") == ["notify"] and values(unit, "WatchdogSec")
    assert values(unit, "Restart") == ["on-failure"]


def documented_keys(text: str) -> set[str]:
    return set(re.findall(r"^(?:# )?(\w+) = ", text, re.MULTILINE))


def uncommented(text: str) -> str:
    """The config with every documented default switched on."""
    return re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)


@pytest.mark.parametrize(("name", "text"), [("systemd/edgecam.toml", CONFIG.read_text()),
                                            ("edgecam service config", render_config(run_options()))])
def test_example_config_documents_and_accepts_every_run_option(name: str, text: str,
                                                               tmp_path: Path) -> None:
    keys = {o.key for o in run_options()}
    missing = keys - documented_keys(text)
    assert not missing, (f"{name} lacks {sorted(missing)}: regenerate it with "
                         "edgecam service config > systemd/edgecam.toml")
    assert documented_keys(text) <= keys
    path = tmp_path / "edgecam.toml"
    path.write_text(text)
    settings = options.resolve(run_options(), {}, options.read_config(path))
    assert settings == options.resolve(run_options(), {}, SERVICE_VALUES)
    path.write_text(uncommented(text))  # every default shown is a value the option accepts
    options.resolve(run_options(), {}, options.read_config(path))
