"""`edgecam service install|uninstall|status|config`: edgecam as a hardened systemd service."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from edgecam.base.errors import EdgecamError, UsageError
from edgecam.service.install import (
    CONFIG_FILE,
    UNIT,
    USER,
    Installer,
    describe_prediction,
    last_lines,
    perform,
    render_config,
    run_options,
)

STATUS_LINES = 5


def register(commands: argparse._SubParsersAction) -> None:
    service = commands.add_parser("service", help="run edgecam unattended as a systemd service")
    actions = service.add_subparsers(dest="service_command", metavar="ACTION", required=True)

    install = actions.add_parser("install", help="write the unit, its config and user, then enable "
                                 "and start the service")
    install.add_argument("--config", type=Path, metavar="FILE",
                         help=f"install this config as {CONFIG_FILE} (default: keep the one there, "
                         "or write the example of `edgecam service config`)")
    install.add_argument("--user", default=USER, metavar="NAME",
                         help=f"the unprivileged user the service runs as, created if missing and "
                         f"added to the video group (default: {USER})")
    install.add_argument("--models", type=Path, metavar="FILE.edgecam.zip",
                         help="import this model package (`edgecam models export`) into the service's "
                         "model cache, so a device without torch needs no build")
    install.set_defaults(func=cmd_install)

    uninstall = actions.add_parser("uninstall", help="stop, disable and remove the service (keeps "
                                   "the config, model cache, logs and user)")
    uninstall.set_defaults(func=cmd_uninstall)

    for action in (install, uninstall):
        action.add_argument("--dry-run", action="store_true", help="print every step, change nothing")

    status = actions.add_parser("status", help="systemctl status and the last predictions")
    status.add_argument("--lines", type=int, default=STATUS_LINES, metavar="N",
                        help=f"how many predictions to show (default: {STATUS_LINES})")
    status.set_defaults(func=cmd_status)

    for action in (install, uninstall, status):
        action.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                            help="work on the system staged in DIR (a package or an SD-card image) "
                            "instead of this one: nothing is started or stopped")

    config = actions.add_parser("config", help="print the example service config: every option of "
                                "`edgecam run`, documented")
    config.set_defaults(func=cmd_config)


def installer(args: argparse.Namespace) -> Installer:
    """The installer for --root; refuses (one line) when it cannot change the running system,
    unless this is a dry run, which says so and goes on."""
    result = Installer(args.root.resolve())
    refusal = result.refusal()
    if refusal and not args.dry_run:
        raise EdgecamError(refusal)
    if refusal:
        print(f"(for real, this would stop here: {refusal})")
    return result


def cmd_install(args: argparse.Namespace) -> int:
    target = installer(args)
    perform(target.install(args.user, args.config, args.models), args.dry_run, sys.stdout)
    if target.live and not args.dry_run:
        print(f"{UNIT} is starting (the first start builds the model); follow it with: "
              "journalctl -u edgecam -f")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    target = installer(args)
    perform(target.uninstall(), args.dry_run, sys.stdout)
    print(target.kept())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.lines < 1:
        raise UsageError(f"--lines {args.lines}: give 1 or more")
    target = Installer(args.root.resolve())
    code = 0
    if target.live and Path("/run/systemd/system").is_dir():
        sys.stdout.flush()
        code = subprocess.run(["systemctl", "status", "--no-pager", UNIT], check=False).returncode
    elif target.live:
        print("systemd is not running here: no service state to show")
    if not target.path(CONFIG_FILE).exists():
        raise EdgecamError(f"{UNIT} is not installed: {target.path(CONFIG_FILE)} does not exist")
    log = target.log_file()
    if log is None:
        print(f"{target.path(CONFIG_FILE)} sets no log: no predictions to show")
    elif not log.exists():
        print(f"no predictions yet: {log} does not exist")
    else:
        try:
            lines = last_lines(log, args.lines)
        except OSError as e:
            raise EdgecamError(f"cannot read {log}: {e.strerror or e} (try sudo)") from None
        print(f"last predictions in {log}:")
        for line in lines:
            print("  " + describe_prediction(line))
    return code


def cmd_config(args: argparse.Namespace) -> int:
    print(render_config(run_options()), end="")
    return 0
