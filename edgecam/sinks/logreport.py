"""What a headless log says: how long it ran, what it saw how often, when, and how fast; as text
and as one picture (a label timeline, the top-1 score, latency and FPS, counts per label)."""
from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edgecam.base.errors import EdgecamError


@dataclass(frozen=True)
class Segment:
    """A stretch of consecutive records with the same top-1 label."""

    label: str
    start: datetime
    end: datetime
    records: int


@dataclass
class LogHistory:
    times: list[datetime]
    labels: list[str]  # top-1 of each record
    scores: list[float]
    latency_ms: list[float]
    fps: list[float]
    unreadable: int  # lines that are not a record (the line a crash cut short)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.labels)

    def segments(self) -> list[Segment]:
        result: list[Segment] = []
        for time, label in zip(self.times, self.labels, strict=True):
            if result and result[-1].label == label:
                last = result[-1]
                result[-1] = Segment(label, last.start, time, last.records + 1)
            else:
                result.append(Segment(label, time, time, 1))
        return result


def read_log(paths: list[Path]) -> LogHistory:
    """The records of JSON Lines logs (rotated files given oldest first, or in any order: records
    are sorted by time)."""
    rows: list[dict] = []
    unreadable = 0
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as e:
            raise EdgecamError(f"log {path} cannot be read ({e.strerror}): check the path") from None
        for line in lines:
            try:
                row = json.loads(line)
                row["_time"] = datetime.fromisoformat(row["time"])
                if row["top"] == []:  # a frame where --only/--ignore/--min-score let no label pass
                    continue
                if not isinstance(row["top"][0]["label"], str):
                    raise TypeError("a record's label is text")
            except (ValueError, KeyError, IndexError, TypeError):
                unreadable += 1
                continue
            rows.append(row)
    if not rows:
        raise EdgecamError(f"{', '.join(map(str, paths))}: no records: give a JSON Lines log written "
                           "by edgecam run --log")
    rows.sort(key=lambda r: r["_time"])
    return LogHistory([r["_time"] for r in rows], [r["top"][0]["label"] for r in rows],
                  [float(r["top"][0]["score"]) for r in rows],
                  [float(r.get("inference_ms", 0.0)) for r in rows],
                  [float(r.get("fps", 0.0)) for r in rows], unreadable)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes \
        else f"{seconds:.1f}s"


def summary_text(report: LogHistory, timeline_rows: int = 20) -> str:
    span = (report.times[-1] - report.times[0]).total_seconds()
    lines = [f"{len(report.labels)} records from {report.times[0]:%Y-%m-%d %H:%M:%S} to "
             f"{report.times[-1]:%Y-%m-%d %H:%M:%S} ({_duration(span)})"]
    if report.unreadable:
        lines.append(f"{report.unreadable} unreadable lines skipped (a crash cuts at most one short)")
    lines += ["", "top-1 label              records   share  mean score"]
    for label, count in report.counts.most_common():
        scores = zip(report.labels, report.scores, strict=True)
        mean = statistics.fmean(s for lab, s in scores if lab == label)
        lines.append(f"{label[:24]:<24} {count:>8} {count / len(report.labels):>7.1%} {mean:>11.3f}")
    latency = report.latency_ms
    lines += ["", f"inference: median {statistics.median(latency):.1f} ms, p90 "
                  f"{_percentile(latency, 0.9):.1f} ms, p99 {_percentile(latency, 0.99):.1f} ms, "
                  f"max {max(latency):.1f} ms",
              f"frame rate: median {statistics.median(report.fps):.1f} FPS, min {min(report.fps):.1f}, "
              f"max {max(report.fps):.1f}", "", "timeline"]
    segments = report.segments()
    for segment, after in itertools.islice(itertools.pairwise([*segments, None]), timeline_rows):
        # A label held from its first record until the next label's first record.
        length = ((after.start if after else segment.end) - segment.start).total_seconds()
        lines.append(f"  {segment.start:%H:%M:%S}  {_duration(length):>9}  {segment.label} "
                     f"({segment.records} records)")
    if len(segments) > timeline_rows:
        lines.append(f"  … {len(segments) - timeline_rows} more changes (see --plot)")
    return "\n".join(lines)


def plot(report: LogHistory, out: Path, max_labels: int = 10) -> None:
    """One PNG: where each label was top-1 over time, the top-1 score, latency and FPS, and how
    often each label was seen. Labels beyond the `max_labels` most frequent are drawn as 'other'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [label for label, _ in report.counts.most_common(max_labels)]
    name = {label: label for label in shown}
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(shown)}
    other = "other"
    colours[other] = (0.6, 0.6, 0.6, 1.0)
    rows = shown + ([other] if len(report.counts) > len(shown) else [])
    times = mdates.date2num(report.times)
    # A record stands for the time until the next one (the last one for the median gap).
    gaps = [b - a for a, b in itertools.pairwise(times)]
    typical = statistics.median(gaps) if gaps else 1 / 86400
    widths = [min(g, 5 * typical) for g in gaps] + [typical]

    figure = plt.figure(figsize=(13, 7.5), layout="constrained")
    grid = figure.add_gridspec(3, 2, width_ratios=(3.2, 1), height_ratios=(1.3, 1, 1))
    timeline = figure.add_subplot(grid[0, 0])
    score = figure.add_subplot(grid[1, 0], sharex=timeline)
    speed = figure.add_subplot(grid[2, 0], sharex=timeline)
    counts = figure.add_subplot(grid[:, 1])

    for row, label in enumerate(rows):
        spans = [(t, w) for t, w, lab in zip(times, widths, report.labels, strict=True)
                 if name.get(lab, other) == label]
        timeline.broken_barh(spans, (row - 0.4, 0.8), color=colours[label])
    timeline.set_yticks(range(len(rows)), rows)
    timeline.invert_yaxis()
    timeline.set_title("What the camera saw (top-1 label over time)", loc="left")
    timeline.grid(axis="x", alpha=0.3)

    score.scatter(report.times, report.scores, s=6,
                  c=[colours[name.get(lab, other)] for lab in report.labels])
    score.set_ylim(0, 1)
    score.set_ylabel("top-1 score")
    score.grid(alpha=0.3)

    # Lines break where the log has a gap (edgecam was not running), instead of bridging it.
    breaks = [i + 1 for i, g in enumerate(gaps) if g > 5 * typical]
    line_times = np.insert(times, breaks, np.nan)
    speed.plot(line_times, np.insert(report.latency_ms, breaks, np.nan), lw=0.8, color="tab:red")
    speed.set_ylabel("inference (ms)", color="tab:red")
    speed.set_ylim(bottom=0)
    fps = speed.twinx()
    fps.plot(line_times, np.insert(report.fps, breaks, np.nan), lw=0.8, color="tab:blue")
    fps.set_ylabel("FPS", color="tab:blue")
    fps.set_ylim(bottom=0)
    speed.grid(alpha=0.3)
    locator = mdates.AutoDateLocator()
    speed.xaxis_date()
    speed.xaxis.set_major_locator(locator)
    speed.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for axis in (timeline, score):
        axis.tick_params(labelbottom=False)

    tally = Counter(name.get(lab, other) for lab in report.labels)
    counts.barh(rows, [tally[r] for r in rows], color=[colours[r] for r in rows])
    for row, label in enumerate(rows):
        counts.text(tally[label], row, f" {tally[label] / len(report.labels):.0%}", va="center")
    counts.invert_yaxis()
    counts.set_xlabel("records")
    counts.set_title("How often", loc="left")
    counts.margins(x=0.2)

    span = (report.times[-1] - report.times[0]).total_seconds()
    figure.suptitle(f"edgecam log: {len(report.labels)} records over {_duration(span)}, "
                    f"median {statistics.median(report.latency_ms):.0f} ms per frame", x=0.01,
                    ha="left", fontsize=13)
    try:
        figure.savefig(out, dpi=110)
    except OSError as e:
        raise EdgecamError(f"plot {out} cannot be written ({e.strerror}): choose another --plot "
                           "path") from None
    finally:
        plt.close(figure)
