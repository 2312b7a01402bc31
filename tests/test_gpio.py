"""--gpio in a real run on the demo, with gpiozero's mock pin factory (GPIOZERO_PIN_FACTORY=mock, as
a user would try it off a Pi): each pin goes high exactly while its label is the current event's
label, and every pin is low at the end. Without gpiozero, or without a pin factory, the run stops
at start with one line saying what to install or set."""
from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import edgecam, read_jsonl, require_module

PINS = {"GPIO17": "Egyptian cat", "GPIO27": "tiger cat", "GPIO22": "espresso", "GPIO23": "moped"}
GIVEN = "17=Egyptian cat,GPIO27=tiger cat,BCM22=espresso,23=moped"  # the names a user may write

# The CLI in this process, then the history of each mock pin's states on stdout.
RUN = """
import json, sys
from gpiozero import Device
from edgecam.cli import main
status = main(sys.argv[2:])
print(json.dumps({pin: [s.state for s in Device.pin_factory.pin(pin).states]
                  for pin in json.loads(sys.argv[1])}))
sys.exit(status)
"""


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})}, check=False)


def test_pins_follow_the_event_label(tmp_path: Path) -> None:
    require_module("gpiozero", "gpiozero", pip=True)
    log = tmp_path / "events.jsonl"
    # 100 demo frames: the cat (Egyptian cat and tiger cat take turns), then the espresso.
    result = python(RUN, json.dumps(list(PINS)), "run", "--headless", "--frames", "100", "--events",
                    "change", "--log", str(log), "--gpio", GIVEN, env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert result.returncode == 0, result.stderr
    states = json.loads(result.stdout.splitlines()[-1])
    labels = [event["event"]["label"] for event in read_jsonl(log)]
    for pin, label in PINS.items():
        # low at first, then high exactly while the current event is its label, low at the end
        levels = [False, *(current == label for current in labels), False]
        assert states[pin] == [level for level, _ in itertools.groupby(levels)], pin
    assert all(True in states[pin] for pin in ("GPIO17", "GPIO27", "GPIO22"))
    assert states["GPIO23"] == [False]  # the moped comes later in the demo


def test_no_pin_factory_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    require_module("gpiozero", "gpiozero", pip=True)
    if Path("/dev/gpiochip0").exists():
        pytest.skip("this machine has GPIO: gpiozero may find a pin factory")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    result = edgecam("run", "--headless", "--frames", "1", "--gpio", "17=tabby")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("edgecam: error: --gpio: gpiozero has no pin "
                                                     "factory here")
    assert "GPIOZERO_PIN_FACTORY=mock" in result.stderr.splitlines()[-1]
    assert "Warning" not in result.stderr  # gpiozero's fallbacks are not shown


def test_without_gpiozero_it_says_what_to_install() -> None:
    result = python("import sys\n"
                    "sys.modules['gpiozero'] = None  # as if it were not installed\n"
                    "from edgecam.cli import main\n"
                    "sys.exit(main(['run', '--headless', '--frames', '1', '--gpio', '17=tabby']))")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "edgecam: error: --gpio needs gpiozero: pip install gpiozero (on Raspberry Pi OS: apt "
        "install python3-gpiozero)")


def test_with_several_cameras_a_pin_is_high_while_any_camera_shows_its_label(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each camera has its own current label: the door's cat does not switch off when the street
    sees a moped, and a frame none of whose labels passed --min-score counts as nothing seen."""
    require_module("gpiozero", "gpiozero", pip=True)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    import numpy as np
    from gpiozero import Device

    from edgecam.base.frame import Frame, Label, Prediction
    from edgecam.sinks.gpio import Pins

    pins = Pins((("GPIO17", "tabby"), ("GPIO27", "moped")))
    pins.open()
    image = np.zeros((4, 4, 3), np.uint8)

    def show(camera: str, *labels: str) -> dict[str, bool]:
        top = [Label(label, i, 0.9) for i, label in enumerate(labels)]
        pins.write(Frame(image, 0, 0.0, camera=camera), Prediction(top, 1.0))
        return {pin: bool(Device.pin_factory.pin(pin).state) for pin in ("GPIO17", "GPIO27")}

    try:
        assert show("door", "tabby") == {"GPIO17": True, "GPIO27": False}
        assert show("street", "moped") == {"GPIO17": True, "GPIO27": True}
        assert show("door") == {"GPIO17": False, "GPIO27": True}  # nothing passed at the door
        assert show("street", "tabby") == {"GPIO17": True, "GPIO27": False}
    finally:
        pins.close()
    assert not Device.pin_factory.pin("GPIO17").state and not Device.pin_factory.pin("GPIO27").state
    Device.pin_factory.reset()
