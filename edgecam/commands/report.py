"""`edgecam report`: what a headless log says, as text and optionally as a plot."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="summarise a JSON Lines log: labels, timeline, speed")
    report.add_argument("logs", nargs="+", type=Path, metavar="LOG.jsonl",
                        help="log files written by edgecam run --log (rotated ones too)")
    report.add_argument("--plot", type=Path, metavar="OUT.png", help="also draw the log as a picture")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from edgecam.sinks import logreport as report

    summary = report.read_log(args.logs)
    print(report.summary_text(summary))
    if args.plot:
        report.plot(summary, args.plot)
        print(f"\nplot: {args.plot}")
    return 0
