"""The systemd unit, its config and sysusers entry, and the steps that install, remove and inspect
them. The files are rendered here (not shipped as data) so the unit starts the edgecam that runs the
install, and the example config documents exactly the options this edgecam has.

Every step takes a root directory: "/" is the running system; another directory stages the files
for a package or an SD-card image (users and enablement are written into it, nothing is started)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edgecam.base import atomic, options
from edgecam.base.errors import EdgecamError, UsageError
from edgecam.models import package
from edgecam.runtime.pipeline import run_options

UNIT = "edgecam.service"
USER = "edgecam"
UNIT_FILE = Path("/etc/systemd/system") / UNIT
DROPIN_DIR = Path("/etc/systemd/system") / f"{UNIT}.d"
JETSON_DROPIN = DROPIN_DIR / "jetson.conf"
SYSUSERS_FILE = Path("/etc/sysusers.d/edgecam.conf")
CONFIG_FILE = Path("/etc/edgecam/edgecam.toml")
STATE_DIR = Path("/var/lib/edgecam")  # StateDirectory=edgecam: the model cache
LOG_FILE = Path("/var/log/edgecam/predictions.jsonl")  # under LogsDirectory=edgecam
JETSON_RELEASE = Path("/etc/nv_tegra_release")  # present on every L4T (Jetson) system
# Where the unit's ExecStart points in the shipped example (a venv made for the service).
EXAMPLE_COMMAND = ["/opt/edgecam/bin/edgecam"]
# ProtectHome= hides these; an edgecam installed below one is bound back in read-only.
HIDDEN_TREES = (Path("/home"), Path("/root"), Path("/run/user"))

# The values the service config sets; every other key is documented with its default, commented.
SERVICE_VALUES: dict[str, Any] = {
    "source": "demo",
    "headless": True,
    "log": str(LOG_FILE),
    "log_max_bytes": "10M",  # an SD card must not fill up with predictions
}

UNIT_TEMPLATE = """\
# edgecam as a system service: `edgecam run` configured by {config}.
# Written by `edgecam service install`; local changes belong in a drop-in
# (systemctl edit edgecam), which survives a reinstall.
[Unit]
Description=edgecam live image classifier
Documentation=man:systemd.service(5)
# Network sources (rtsp://, http://) and outputs (MQTT) need the network up.
Wants=network-online.target
After=network-online.target
# More than 10 failed starts in 10 minutes means it will not heal by restarting: stop and stay
# failed (systemctl status shows it) instead of looping forever.
StartLimitIntervalSec=10min
StartLimitBurst=10

[Service]
# READY=1 once the model is loaded and the first frame is classified; STATUS= shows FPS and
# the current top-1; WATCHDOG=1 comes from the frame loop, so a stalled camera or a hung
# inference misses WatchdogSec= and systemd restarts the service.
Type=notify
NotifyAccess=main
WatchdogSec=30s
ExecStart={exec_start} run --config {config}
# SIGHUP (systemctl reload edgecam) re-reads the config and restarts the run in place.
ExecReload=/bin/kill -HUP $MAINPID
SyslogIdentifier=edgecam
Restart=on-failure
RestartSec=10s
# Exit 2 is a bad flag or config value: restarting cannot fix it.
RestartPreventExitStatus=2
# The first start builds the model and, with backend auto, measures each runtime once (minutes on
# a Pi Zero 2 W); later starts take seconds.
TimeoutStartSec=15min
# SIGTERM stops the loop, flushes the log and exits 0 within a couple of seconds.
TimeoutStopSec=15s

User={user}
# /dev/video*, /dev/media* (and Jetson's /dev/nvhost-*) belong to the video group.
SupplementaryGroups=video
Environment=EDGECAM_CACHE=%S/edgecam
StateDirectory=edgecam
LogsDirectory=edgecam
ConfigurationDirectory=edgecam
UMask=0027

# Devices: V4L2 cameras and codecs (/dev/video*, /dev/v4l-subdev*), the media controllers
# libcamera walks (/dev/media*), and the DMA heaps picamera2 allocates frames from
# (/dev/dma_heap/*). Nothing else. Jetson CSI cameras: see the jetson.conf drop-in that
# `edgecam service install` writes on a Jetson.
DevicePolicy=closed
DeviceAllow=char-video4linux rw
DeviceAllow=char-media rw
DeviceAllow=char-dma_heap rw

# Sandbox: `systemd-analyze security` rates this unit "OK" (exposure below 2.0).
{protect_home}
ProtectSystem=strict
PrivateTmp=yes
PrivateMounts=yes
PrivateUsers=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
# ...but for the two calls that let edgecam's helper threads (next frame, log, preview) run nicer
# than inference, and LimitNICE= lets the frame preparer leave the idle class when it is starved.
SystemCallFilter=setpriority sched_setscheduler
LimitNICE=+5
SystemCallErrorNumber=EPERM
# AF_NETLINK: libcamera watches udev for cameras coming and going.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# Not set, on purpose:
# MemoryDenyWriteExecute=yes breaks the model build and the TorchScript backend (torch's
#   oneDNN generates its kernels at run time: "could not create a primitive").
# ProcSubset=pid hides /proc/cpuinfo, which onnxruntime reads to pick its ARM kernels.
# PrivateDevices=yes would hide the camera.
# PrivateNetwork=yes / IPAddressDeny= would cut off network cameras and MQTT brokers.

[Install]
WantedBy=multi-user.target
"""

JETSON_DROPIN_TEXT = """\
# Written by `edgecam service install` on a Jetson. A CSI camera (csi://0) is read through
# GStreamer's nvarguscamerasrc, which talks to nvargus-daemon over /tmp/argus_socket and hands
# frames over in NVMM buffers through the nvmap and nvhost devices (JetPack 4 and 5 names; check
# `ls /dev/nv*` on yours). USB cameras need none of this.
[Service]
PrivateTmp=no
DeviceAllow=/dev/nvmap rw
DeviceAllow=/dev/nvhost-ctrl rw
DeviceAllow=/dev/nvhost-ctrl-gpu rw
DeviceAllow=/dev/nvhost-prof-gpu rw
DeviceAllow=/dev/nvhost-gpu rw
DeviceAllow=/dev/nvhost-as-gpu rw
DeviceAllow=/dev/nvhost-vic rw
DeviceAllow=/dev/nvhost-vi rw
DeviceAllow=/dev/nvhost-isp rw
DeviceAllow=/dev/nvhost-nvdec rw
DeviceAllow=/dev/nvhost-msenc rw
DeviceAllow=/dev/nvhost-nvjpg rw
"""


def edgecam_command() -> list[str]:
    """The edgecam that runs this install: its console script, or its Python with -m edgecam."""
    script = Path(sys.executable).parent / "edgecam"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edgecam"]


def hidden_paths(command: list[str]) -> list[Path]:
    """What the service must see below ProtectHome='s trees: the Python environment, the Python
    it was made from (pyenv keeps it in a home), and the edgecam package (an editable install
    lives in its source tree)."""
    import edgecam

    wanted = {Path(command[0]).parent.parent, Path(sys.prefix), Path(sys.base_prefix),
              Path(edgecam.__file__).resolve().parent.parent}
    return sorted(p for p in wanted if any(p.is_relative_to(tree) for tree in HIDDEN_TREES))


def quote(argument: str) -> str:
    """An ExecStart= argument: systemd splits on spaces, honours C-style quotes and expands
    %-specifiers."""
    argument = argument.replace("%", "%%")
    if re.fullmatch(r"[\w/.:@+=,-]+", argument):
        return argument
    return '"' + argument.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(command: list[str], user: str, exposed: Iterable[Path] = ()) -> str:
    exposed = list(exposed)
    protect_home = "ProtectHome=yes"
    if exposed:
        protect_home = ("ProtectHome=tmpfs\nBindReadOnlyPaths=" +
                        " ".join(quote(str(p)) for p in exposed))
    return UNIT_TEMPLATE.format(exec_start=" ".join(quote(a) for a in command), user=user,
                                config=CONFIG_FILE, protect_home=protect_home)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return '""'  # an optional option's "not set"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string is JSON-escaped


def render_config(opts: Iterable[options.Option]) -> str:
    """The service config: every option of `edgecam run`, with its help; the keys the service
    sets are active, the others are commented out at their default."""
    lines = [
        "# The edgecam service config: every option of `edgecam run`, as a key named after its flag",
        "# (--camera-fps is camera_fps). Keys left commented keep the default shown.",
        f"# Check a change with: edgecam run --config {CONFIG_FILE} --frames 1",
        "# then apply it with: sudo systemctl restart edgecam",
    ]
    for option in opts:
        lines.append("")
        lines.extend("# " + line for line in textwrap.wrap(option.help, 98))
        if option.key in SERVICE_VALUES:
            lines.append(f"{option.key} = {toml_value(SERVICE_VALUES[option.key])}")
        else:
            lines.append(f"# {option.key} = {default_value(option)}")
    return "\n".join([*lines, "", *CAMERAS_EXAMPLE]) + "\n"


# The end of the service config: tables come after every key in TOML.
CAMERAS_EXAMPLE = [
    "# Several cameras in one process, batched through one network: a [[camera]] table each (they",
    "# replace `source`), named in every record, MQTT topic, metric and preview tile, with any source",
    "# option and roi of its own. `edgecam sources` prints a table for each camera found.",
    "# [[camera]]",
    '#   name = "door"',
    '#   source = "usb:0"',
    "#   rotation = 180",
    "#",
    "# [[camera]]",
    '#   name = "street"',
    '#   source = "rtsp://user:password@192.0.2.10:554/stream"',
    '#   roi = "0.5,0,0.5,1"',
]


def default_value(option: options.Option) -> str:
    """The option's default as TOML its parser reads back to the default: as it is, or, for a
    pair like a frame size (1280, 720), in the WIDTHxHEIGHT form flags use."""
    candidates = [option.default]
    if isinstance(option.default, (list, tuple)):
        candidates.append("x".join(str(v) for v in option.default))
    for candidate in candidates:
        value = toml_value(candidate)
        try:
            parsed = (options.boolean if option.switch else option.parse)(
                tomllib.loads(f"v = {value}")["v"])
        except ValueError:
            continue
        if parsed == option.default:
            return value
    raise ValueError(f"option {option.key}: its default {option.default!r} cannot be written as "
                     "a config value its parser reads back")


def render_sysusers(user: str) -> str:
    return (f"# The edgecam service user (edgecam service install): no login, in the video group.\n"
            f'u {user} - "edgecam service" {STATE_DIR}\n'
            f"m {user} video\n")


def run_settings(config: Path) -> options.Settings:
    """The settings `edgecam run --config CONFIG` would run with, or its one-line UsageError."""
    return options.resolve(run_options(), {}, options.read_config(config),
                           config_name=f"config {config}")


@dataclass(frozen=True)
class Step:
    says: str  # what --dry-run prints
    do: Callable[[], None]


class Installer:
    """The steps of install/uninstall for one root directory."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self.live = root == Path("/")  # the running system, not a staging directory

    def path(self, path: Path) -> Path:
        return self.root / path.relative_to("/")

    def refusal(self) -> str | None:
        """Why this cannot change the running system, or None. A staging root needs neither."""
        if not self.live:
            return None
        if os.geteuid() != 0:
            return "installing a system service needs root: run it with sudo"
        if not Path("/run/systemd/system").is_dir():
            return "systemd is not running here (no /run/systemd/system): cannot install a service"
        return None

    def write(self, path: Path, text: str, mode: int = 0o644) -> Step:
        return Step(f"write {self.path(path)}", lambda: atomic.write_text(self.path(path), text, mode))

    def remove(self, path: Path) -> Step:
        return Step(f"remove {self.path(path)}", lambda: self.path(path).unlink(missing_ok=True))

    def command(self, *argv: str, env: dict[str, str] | None = None) -> Step:
        def do() -> None:
            result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                    env=None if env is None else {**os.environ, **env})
            if result.returncode != 0:
                reason = " ".join((result.stderr or result.stdout).split()) or f"exit {result.returncode}"
                raise EdgecamError(f"{shlex.join(argv)} failed: {reason}")

        said = " ".join(f"{key}={shlex.quote(value)}" for key, value in (env or {}).items())
        return Step(f"run {said + ' ' if said else ''}{shlex.join(argv)}", do)

    def import_models(self, file: Path) -> Step:
        """`edgecam models import FILE` into the service's model cache (its StateDirectory, which
        systemd hands to the service user at start), so the first start builds nothing."""
        package.check(file)  # refuse a bad package before any step runs
        return self.command(*edgecam_command(), "models", "import", str(file.resolve()),
                            env={"EDGECAM_CACHE": str(self.path(STATE_DIR))})

    def systemctl(self, *argv: str) -> Step:
        return self.command("systemctl", *([] if self.live else [f"--root={self.root}"]), *argv)

    def install(self, user: str, config: Path | None, models: Path | None = None) -> list[Step]:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,30}", user) or user == "root":
            raise UsageError(f"--user {user!r}: give an unprivileged user name (lowercase letters, "
                             "digits, - and _), e.g. edgecam")
        steps = [self.write(SYSUSERS_FILE, render_sysusers(user)),
                 self.command("systemd-sysusers",
                              *([] if self.live else [f"--root={self.root}"]),
                              str(self.path(SYSUSERS_FILE)))]
        if config is not None:
            run_settings(config)  # refuse a config the service would fail on
            steps.append(self.write(CONFIG_FILE, config.read_text(encoding="utf-8")))
        elif self.path(CONFIG_FILE).exists():
            run_settings(self.path(CONFIG_FILE))
            steps.append(Step(f"keep {self.path(CONFIG_FILE)} (pass --config FILE to replace it)",
                              lambda: None))
        else:
            steps.append(self.write(CONFIG_FILE, render_config(run_options())))
        command = edgecam_command()
        steps.append(self.write(UNIT_FILE, render_unit(command, user, hidden_paths(command))))
        if self.path(JETSON_RELEASE).exists():
            steps.append(self.write(JETSON_DROPIN, JETSON_DROPIN_TEXT))
        if models is not None:
            steps.append(self.import_models(models))
        if self.live:
            steps += [self.systemctl("daemon-reload"), self.systemctl("enable", UNIT),
                      # --no-block: the first start builds the model, which can take minutes.
                      self.systemctl("restart", "--no-block", UNIT)]
        else:
            steps.append(self.systemctl("enable", UNIT))
        return steps

    def uninstall(self) -> list[Step]:
        if not self.path(UNIT_FILE).exists():
            raise EdgecamError(f"{UNIT} is not installed: {self.path(UNIT_FILE)} does not exist")
        steps = [self.systemctl("disable", *(["--now"] if self.live else []), UNIT),
                 self.remove(UNIT_FILE), self.remove(SYSUSERS_FILE)]
        if self.path(JETSON_DROPIN).exists():  # only ours: `systemctl edit` overrides stay
            steps.append(self.remove(JETSON_DROPIN))
        if self.live:
            steps.append(self.systemctl("daemon-reload"))
        return steps

    def kept(self) -> str:
        """What uninstall leaves behind, for the user to remove if they want."""
        return (f"kept: the config {self.path(CONFIG_FILE.parent)}, the model cache "
                f"{self.path(STATE_DIR)}, the logs {self.path(LOG_FILE.parent)} and the service user")

    def log_file(self) -> Path | None:
        """The prediction log the installed config names (below the root), or None."""
        log = run_settings(self.path(CONFIG_FILE)).log
        return self.path(Path(log)) if log and Path(log).is_absolute() else None


def perform(steps: list[Step], dry_run: bool, out: TextIO) -> None:
    for step in steps:
        print(("would " if dry_run else "") + step.says, file=out)
        if not dry_run:
            step.do()


def last_lines(path: Path, count: int, block: int = 1 << 16) -> list[str]:
    """The last `count` complete lines of a (possibly large, growing) file."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - block))
        data = f.read()
    lines = data.decode("utf-8", "replace").split("\n")
    if size > block:
        lines = lines[1:]  # the first one is cut
    return [line for line in lines[:-1] if line.strip()][-count:]


def describe_prediction(line: str) -> str:
    """One log record as a short line; a line that is not JSON (the CSV format) as it is."""
    try:
        record = json.loads(line)
        best = (f"{record['top'][0]['label']} ({record['top'][0]['score']:.2f})" if record["top"]
                else "no label selected")
        return f"{record['time']}  frame {record['frame']}  {best}  {record.get('fps', 0):.1f} FPS"
    except (ValueError, KeyError, IndexError, TypeError):
        return line
