"""Board health: the CPU temperature and the Raspberry Pi firmware's throttling and under-voltage
flags, read where the machine has them and omitted where it does not (never 0 or False in their
place).

- Temperature: the CPU's thermal zone in /sys/class/thermal (by its `type`: cpu-thermal on a Pi
  or an Orin, CPU-therm on a Jetson Nano, x86_pkg_temp on Intel), else a CPU hwmon sensor
  (coretemp, k10temp), else the first zone that reads.
- Flags: `vcgencmd get_throttled` ("throttled=0x50005"), else the firmware driver's sysfs file
  (hex without 0x). Bits 0-3 are now (under-voltage, ARM frequency capped, throttled, soft
  temperature limit), bits 16-19 the same since boot.

`root` (default /) is where /sys is looked for, so tests read fake trees laid out as the drivers
lay them out; vcgencmd is looked up on PATH."""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

UNDER_VOLTAGE = 1 << 0
# The CPU runs slower than it could: ARM frequency capped, throttled, or at the soft temperature limit.
SLOWED = (1 << 1) | (1 << 2) | (1 << 3)
OCCURRED = 16  # bits 16-19 are bits 0-3, set once since boot
FIRMWARE_FILE = "sys/devices/platform/soc/soc:firmware/get_throttled"
CPU_ZONES = ("cpu-thermal", "cpu_thermal", "cpu-therm", "x86_pkg_temp")
CPU_SENSORS = ("cpu_thermal", "coretemp", "k10temp", "zenpower")  # hwmon names
OTHER_ZONE = 2  # the rank of a zone that is not the CPU's
PLAUSIBLE_CELSIUS = (-40.0, 150.0)  # a zone outside this is broken or unpowered: skipped
VCGENCMD_TIMEOUT = 2.0


def read(root: Path = Path("/")) -> dict:
    """What this machine reports now: cpu_temperature_celsius; and, with the firmware flags,
    throttled_flags ("0x50005"), under_voltage and throttled (now), under_voltage_occurred and
    throttled_occurred (since boot). Only the keys whose source is present."""
    health: dict = {}
    celsius = cpu_temperature(root)
    if celsius is not None:
        health["cpu_temperature_celsius"] = celsius
    flags = throttled_flags(root)
    if flags is not None:
        health.update(decode(flags))
    return health


def decode(flags: int) -> dict:
    return {"throttled_flags": f"{flags:#x}",
            "under_voltage": bool(flags & UNDER_VOLTAGE),
            "throttled": bool(flags & SLOWED),
            "under_voltage_occurred": bool(flags & (UNDER_VOLTAGE << OCCURRED)),
            "throttled_occurred": bool(flags & (SLOWED << OCCURRED))}


def cpu_temperature(root: Path = Path("/")) -> float | None:
    """The CPU's temperature in °C (one decimal), or None where no sensor reads."""
    zones = sorted((_zone_rank(zone), zone) for zone in (root / "sys/class/thermal").glob("thermal_zone*"))
    sensors = [hwmon / "temp1_input" for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*"))
               if _read(hwmon / "name") in CPU_SENSORS]
    candidates = ([zone / "temp" for (kind, _), zone in zones if kind < OTHER_ZONE] + sensors
                  + [zone / "temp" for (kind, _), zone in zones if kind == OTHER_ZONE])
    for path in candidates:
        celsius = _celsius(path)
        if celsius is not None:
            return celsius
    return None


def _zone_rank(zone: Path) -> tuple[int, int]:
    """Named CPU zones first, then any with "cpu" in its type, then the others; each by number."""
    kind = (_read(zone / "type") or "").lower()
    number = int(re.sub(r"\D", "", zone.name) or 0)
    return (0 if kind in CPU_ZONES else 1 if "cpu" in kind else OTHER_ZONE), number


def _celsius(path: Path) -> float | None:
    try:
        celsius = int(_read(path) or "") / 1000  # millidegrees
    except ValueError:  # absent, or not a number
        return None
    low, high = PLAUSIBLE_CELSIUS
    return round(celsius, 1) if low <= celsius <= high else None


def throttled_flags(root: Path = Path("/")) -> int | None:
    """The firmware's get_throttled bits, or None off a Raspberry Pi (or without access)."""
    flags = _vcgencmd_flags()
    if flags is not None:
        return flags
    text = _read(root / FIRMWARE_FILE)
    return int(text, 16) if text is not None and re.fullmatch(r"[0-9a-fA-F]+", text) else None


def _vcgencmd_flags() -> int | None:
    """`vcgencmd get_throttled`'s bits; None without it, or when it cannot reach the firmware
    (not in the video group: "VCHI initialization failed")."""
    vcgencmd = shutil.which("vcgencmd")
    if vcgencmd is None:
        return None
    try:
        done = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True,
                              timeout=VCGENCMD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.fullmatch(r"\s*throttled=(0x[0-9a-fA-F]+)\s*", done.stdout)
    return int(found.group(1), 16) if done.returncode == 0 and found else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):  # absent, or a driver that refuses the read (EINVAL)
        return None


def describe(health: dict) -> str:
    """One line for people: "CPU 54.3 °C, under-voltage now, throttling has occurred since boot"
    ("" when nothing is known)."""
    parts = []
    if "cpu_temperature_celsius" in health:
        parts.append(f"CPU {health['cpu_temperature_celsius']:.1f} °C")
    for key, what in (("under_voltage", "under-voltage"), ("throttled", "throttling")):
        if health.get(key):
            parts.append(f"{what} now")
        elif health.get(f"{key}_occurred"):
            parts.append(f"{what} has occurred since boot")
    if "throttled_flags" in health and int(health["throttled_flags"], 16) == 0:
        parts.append("no under-voltage or throttling since boot")
    return ", ".join(parts)


def slowed_during(before: dict, after: dict) -> str | None:
    """Why a measurement taken between two readings may understate the machine, or None: a "now"
    flag was set at either end, or an "occurred" flag got set in between."""
    found = [(what, fix) for key, what, fix in (
        ("under_voltage", "under-voltage", "use a stronger power supply"),
        ("throttled", "throttled", "cool the board (a heatsink, a fan)"))
        if before.get(key) or after.get(key)
        or (after.get(f"{key}_occurred") and not before.get(f"{key}_occurred"))]
    if not found:
        return None
    whats, fixes = zip(*found, strict=True)
    return (f"the board was {' and '.join(whats)} during the benchmark (flags "
            f"{before.get('throttled_flags', 'unknown')} before, {after.get('throttled_flags', 'unknown')} "
            f"after), so its figures understate this machine: {', '.join(fixes)} and run it again")


class Monitor:
    """The health read at most once per `max_age` seconds, however often /metrics and
    /api/status are asked (each reading may start a vcgencmd); thread-safe."""

    def __init__(self, root: Path = Path("/"), max_age: float = 1.0) -> None:
        self.root = root
        self.max_age = max_age
        self._lock = threading.Lock()
        self._health: dict = {}
        self._read_at: float | None = None

    def read(self) -> dict:
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self.max_age:
                self._health, self._read_at = read(self.root), now
            return dict(self._health)
