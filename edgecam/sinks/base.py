"""The one interface every output has: open(), write(frame, prediction), close()."""
from __future__ import annotations

from datetime import datetime, timezone

from edgecam.frame import Frame, Prediction


class Sink:
    # Set by a sink whose user asked to end the run (a window's q or Esc).
    stop_requested: bool = False

    def open(self) -> None:
        """Acquire what the sink writes to; errors here abort the run before it starts."""

    def write(self, frame: Frame, prediction: Prediction) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release; called once, also when the run ends by a signal or an error."""


def top_record(prediction: Prediction) -> list[dict]:
    return [{"label": t.label, "index": t.index, "score": round(t.score, 5)} for t in prediction.top]


def record(frame: Frame, prediction: Prediction) -> dict:
    """The result of one frame as the logs and messages carry it."""
    return {
        "time": datetime.fromtimestamp(frame.timestamp, timezone.utc).isoformat(timespec="milliseconds"),
        "frame": frame.index,
        "source": frame.source,
        "model": prediction.model,
        "backend": prediction.backend,
        "top": top_record(prediction),
        "inference_ms": round(prediction.inference_ms, 3),
        "fps": round(prediction.fps, 2),
    }
