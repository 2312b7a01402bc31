"""--gpio: Raspberry Pi output pins, each high while its label is the current one (gpiozero).

The current label is the top-1 of the last frame received or, with --events, the last event's label
(none once a --events threshold label fell below the threshold); with several cameras each has its
own, and a pin is high while any camera's is its label. Setting a pin takes microseconds, so this
runs on the loop's thread and touches the pins only when a label changes. All pins go low when the
run ends. GPIOZERO_PIN_FACTORY picks how gpiozero drives them (lgpio on a Pi; `mock`
anywhere, to try it)."""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import Sink

if TYPE_CHECKING:
    from gpiozero import OutputDevice


def current_label(prediction: Prediction) -> str | None:
    event = prediction.extra.get("event")
    if event is None:  # every frame: its top-1, none when no label passed --only/--min-score
        return prediction.top[0].label if prediction.top else None
    return None if event.get("above") is False else event["label"]


class Pins(Sink):
    def __init__(self, pins: tuple[tuple[str, str], ...]) -> None:
        self.pins = pins  # (pin, label): a BCM number or a gpiozero name (GPIO17, BCM17)
        self.devices: list[tuple[OutputDevice, str]] = []
        self.labels: dict[str, str | None] = {}  # each camera's current label

    def open(self) -> None:
        try:
            import gpiozero
        except ImportError:
            raise EdgecamError("--gpio needs gpiozero: pip install gpiozero (on Raspberry Pi OS: "
                               "apt install python3-gpiozero)") from None
        try:
            with warnings.catch_warnings():  # each factory it could not load: one warning
                warnings.simplefilter("ignore", gpiozero.PinFactoryFallback)
                gpiozero.Device.ensure_pin_factory()
        except Exception as e:  # noqa: BLE001 - as gpiozero's own search: any failure means none
            raise EdgecamError(f"--gpio: gpiozero has no pin factory here ({e}): on a Raspberry Pi "
                               "install python3-lgpio; elsewhere GPIOZERO_PIN_FACTORY=mock tries it "
                               "with simulated pins") from None
        for pin, label in self.pins:
            try:
                device = gpiozero.OutputDevice(pin.upper(), initial_value=False)
            except gpiozero.GPIOPinInUse:
                self.close()
                raise EdgecamError(f"--gpio {pin}={label}: pin {pin} is in use already (by another "
                                   "of its labels?): give each pin one label") from None
            except Exception as e:  # noqa: BLE001 - the factories' errors share no class (lgpio.error)
                self.close()
                raise EdgecamError(f"--gpio {pin}={label}: cannot drive the pin ({e})") from None
            self.devices.append((device, label))

    def write(self, frame: Frame, prediction: Prediction) -> None:
        label = current_label(prediction)
        if frame.camera in self.labels and self.labels[frame.camera] == label:
            return
        self.labels[frame.camera] = label
        shown = set(self.labels.values())
        for device, wanted in self.devices:
            if device.value != (wanted in shown):
                device.value = wanted in shown

    def close(self, reloading: bool = False) -> None:
        for device, _ in self.devices:
            device.off()
            device.close()
        self.devices = []
        self.labels = {}
