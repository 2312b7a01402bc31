"""edgecam: live image classification on a Raspberry Pi or Jetson CPU."""

__version__ = "0.1.0"
