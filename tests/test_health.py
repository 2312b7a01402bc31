"""Board health from sysfs trees laid out as the kernel's drivers lay them out (thermal zones, hwmon,
the Raspberry Pi firmware's get_throttled) and a fake vcgencmd on PATH; from this machine's own /sys;
and where it shows: /metrics, /api/status, the run summary and the benchmark warning."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import edgecam

from edgecam.base import health
from edgecam.sinks.metrics import Metrics, health_lines
from edgecam.sinks.preview import Preview

HEALTH_METRICS = ("edgecam_cpu_temperature_celsius", "edgecam_throttled", "edgecam_under_voltage")
FLAG_KEYS = {"throttled_flags", "under_voltage", "throttled", "under_voltage_occurred",
             "throttled_occurred"}
PI_HEALTH = {"cpu_temperature_celsius": 54.3, "throttled_flags": "0x50005", "under_voltage": True,
             "throttled": True, "under_voltage_occurred": True, "throttled_occurred": True}


def thermal_zones(root: Path, *zones: tuple[str, str]) -> Path:
    """/sys/class/thermal/thermal_zoneN → ../../devices/virtual/thermal/thermal_zoneN, each with
    its type and temp (millidegrees), as the thermal core makes them."""
    links = root / "sys/class/thermal"
    links.mkdir(parents=True, exist_ok=True)
    for number, (kind, temp) in enumerate(zones):
        zone = root / "sys/devices/virtual/thermal" / f"thermal_zone{number}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(temp + "\n")
        (links / zone.name).symlink_to(Path("../../devices/virtual/thermal") / zone.name)
    return root


def firmware_file(root: Path, text: str) -> Path:
    """The Raspberry Pi firmware driver's get_throttled: hex without 0x ("%x\\n")."""
    path = root / health.FIRMWARE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return root


@pytest.fixture
def path_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH of one empty folder (no vcgencmd, whatever this machine has); tests put one there."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def fake_vcgencmd(folder: Path, output: str, code: int = 0) -> Path:
    script = folder / "vcgencmd"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = get_throttled ] || exit 2\necho '{output}'\nexit {code}\n")
    script.chmod(0o755)
    return script


def test_a_pi_reports_its_temperature_and_flags_from_vcgencmd(tmp_path: Path, path_bin: Path) -> None:
    root = thermal_zones(tmp_path / "pi", ("cpu-thermal", "54321"))
    fake_vcgencmd(path_bin, "throttled=0x50005")
    assert health.read(root) == PI_HEALTH
    assert health.describe(PI_HEALTH) == "CPU 54.3 °C, under-voltage now, throttling now"


def test_the_firmware_file_serves_when_vcgencmd_is_missing_or_fails(tmp_path: Path, path_bin: Path) -> None:
    root = firmware_file(thermal_zones(tmp_path / "pi", ("cpu-thermal", "54321")), "50005")
    assert health.read(root) == PI_HEALTH
    # vcgencmd without access to /dev/vcio: "VCHI initialization failed", exit 255
    fake_vcgencmd(path_bin, "VCHI initialization failed", 255)
    assert health.read(root) == PI_HEALTH
    assert health.throttled_flags(firmware_file(tmp_path / "cleared", "0")) == 0
    assert health.describe(health.decode(0x50000)) == ("under-voltage has occurred since boot, "
                                                       "throttling has occurred since boot")


@pytest.mark.parametrize(("zones", "expected"), [
    ([("acpitz", "27800"), ("INT3400 Thermal", "20000"), ("x86_pkg_temp", "45000")], 45.0),
    ([("AO-therm", "31500"), ("CPU-therm", "38000"), ("GPU-therm", "36500")], 38.0),  # Jetson Nano
    ([("soc-thermal", "41000"), ("cpu-thermal", "-273150")], 41.0),  # a CPU zone that reads nonsense
    ([("acpitz", "27800"), ("pch_skylake", "40500")], 27.8),  # no CPU zone: the first
], ids=["intel", "jetson-nano", "broken-cpu-zone", "first-zone"])
def test_the_cpu_zone_is_chosen_by_its_type(tmp_path: Path, path_bin: Path, zones: list,
                                            expected: float) -> None:
    assert health.read(thermal_zones(tmp_path, *zones)) == {"cpu_temperature_celsius": expected}


def test_zones_are_ranked_by_number_not_by_name(tmp_path: Path) -> None:
    root = thermal_zones(tmp_path, *[(f"zone{n}", "30000") for n in range(10)],
                         ("x86_pkg_temp", "61000"), ("x86_pkg_temp", "62000"))
    assert health.cpu_temperature(root) == 61.0  # thermal_zone10 before thermal_zone11


def test_a_cpu_hwmon_sensor_serves_without_a_cpu_zone(tmp_path: Path) -> None:
    """An AMD desktop: k10temp's Tctl, and an ACPI zone that is not the CPU's."""
    root = thermal_zones(tmp_path, ("acpitz", "16800"))
    for number, (name, temp) in enumerate([("nvme", "33850"), ("k10temp", "48125")]):
        sensor = tmp_path / f"sys/devices/pci0000:00/hwmon/hwmon{number}"
        sensor.mkdir(parents=True)
        (sensor / "name").write_text(name + "\n")
        (sensor / "temp1_input").write_text(temp + "\n")
        (tmp_path / "sys/class/hwmon").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"sys/class/hwmon/hwmon{number}").symlink_to(sensor)
    assert health.cpu_temperature(root) == 48.1


def test_absent_values_are_omitted_and_metrics_have_no_health_lines(tmp_path: Path, path_bin: Path) -> None:
    bare = tmp_path / "bare"
    assert health.read(bare) == {}
    assert health.describe({}) == ""
    rendered = Metrics(health.Monitor(bare)).render()
    assert not any(name in rendered for name in HEALTH_METRICS)
    # a zone whose driver refuses the read, a firmware file with garbage: still nothing
    thermal_zones(bare, ("cpu-thermal", "not a number"))
    firmware_file(bare, "error")
    assert health.read(bare) == {}


def test_metrics_and_status_carry_what_is_present(tmp_path: Path, path_bin: Path) -> None:
    root = thermal_zones(tmp_path / "pi", ("cpu-thermal", "54321"))
    fake_vcgencmd(path_bin, "throttled=0x50005")
    metrics = Metrics(health.Monitor(root))
    lines = metrics.render().splitlines()
    assert "edgecam_cpu_temperature_celsius 54.3" in lines
    assert "edgecam_throttled 1" in lines and "edgecam_under_voltage 1" in lines
    assert "# TYPE edgecam_throttled gauge" in lines
    assert Preview("127.0.0.1", 0, None, metrics).status()["health"] == PI_HEALTH
    fake_vcgencmd(path_bin, "throttled=0x0")
    assert "edgecam_throttled 0" in health_lines(health.read(root))
    only_temperature = Metrics(health.Monitor(thermal_zones(tmp_path / "x86", ("x86_pkg_temp", "45000"))))
    path_bin.joinpath("vcgencmd").unlink()
    assert [line for line in only_temperature.render().splitlines() if line.startswith(HEALTH_METRICS)] \
        == ["edgecam_cpu_temperature_celsius 45.0"]


def test_the_monitor_reads_at_most_once_per_max_age(tmp_path: Path, path_bin: Path) -> None:
    root = thermal_zones(tmp_path, ("cpu-thermal", "50000"))
    cached, fresh = health.Monitor(root, max_age=3600), health.Monitor(root, max_age=0)
    assert cached.read() == fresh.read() == {"cpu_temperature_celsius": 50.0}
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("70000\n")
    assert cached.read() == {"cpu_temperature_celsius": 50.0}
    assert fresh.read() == {"cpu_temperature_celsius": 70.0}


@pytest.mark.parametrize(("before", "after", "warned"), [
    (0x0, 0x0, None),
    (0x50000, 0x50000, None),  # occurred before the benchmark, nothing now: not its concern
    (0x0, 0x40000, "throttled"),  # throttling began and ended during it
    (0x0, 0x10000, "under-voltage"),
    (0x20002, 0x20000, "throttled"),  # frequency capped at its start
    (0x50005, 0x50005, "under-voltage and throttled"),
])
def test_a_benchmark_warns_when_the_board_was_slowed(before: int, after: int, warned: str | None) -> None:
    slowed = health.slowed_during(health.decode(before), health.decode(after))
    if warned is None:
        assert slowed is None
    else:
        assert slowed is not None and f"the board was {warned}" in slowed
        assert f"flags {before:#x} before, {after:#x} after" in slowed
    assert health.slowed_during({}, {}) is None  # no firmware flags here: nothing to say


def plausible_celsius(paths: list[Path]) -> list[float]:
    """What the sensor files read in °C, read here independently of edgecam."""
    found = []
    for path in paths:
        try:
            millidegrees = int(path.read_text())
        except (OSError, ValueError):
            continue
        if -40_000 <= millidegrees <= 150_000:
            found.append(millidegrees / 1000)
    return found


def test_this_machines_own_health_is_consistent() -> None:
    """Whatever this machine has: present values are plausible, absent ones are missing keys."""
    found = health.read()
    zones = plausible_celsius(list(Path("/sys/class/thermal").glob("thermal_zone*/temp")))
    sensors = plausible_celsius(list(Path("/sys/class/hwmon").glob("hwmon*/temp1_input")))
    if "cpu_temperature_celsius" in found:
        assert any(abs(found["cpu_temperature_celsius"] - t) < 5 for t in zones + sensors), found
    else:
        assert not zones, f"thermal zones read {zones} °C, yet no temperature was reported"
    assert set(found) - {"cpu_temperature_celsius"} in (set(), FLAG_KEYS)
    if "throttled_flags" in found:
        flags = int(found["throttled_flags"], 16)
        assert found == {**found, **health.decode(flags)} and flags < 1 << 20


def test_the_run_summary_and_the_benchmark_name_the_boards_health(tmp_path: Path) -> None:
    fake_vcgencmd(tmp_path, "throttled=0x50005")
    env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    result = edgecam("run", "--headless", "--frames", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert "board: under-voltage now, throttling now" in result.stderr
    bench = edgecam("bench", "--startup", "--models", "efficientnet_lite0", env=env, check=True)
    warned = [line for line in bench.stderr.splitlines() if "WARNING" in line]
    assert len(warned) == 1 and "the board was under-voltage and throttled during the benchmark (flags " \
        "0x50005 before, 0x50005 after)" in warned[0], bench.stderr
    assert "use a stronger power supply, cool the board (a heatsink, a fan) and run it again" in warned[0]
