"""edgecam: live image classification on a Raspberry Pi or Jetson CPU."""

import os

__version__ = "0.1.0"


def _opencv_pixel_cap() -> str:
    """OpenCV reads its decoding cap once, when it loads (before any edgecam module imports cv2):
    an image whose header promises more pixels is not decoded. edgecam.base.imageio refuses such
    files itself, with a clearer message, for every format it reads a header of; this covers the
    rest. A malformed EDGECAM_MAX_IMAGE_MP is reported by imageio."""
    try:
        return str(int(float(os.environ.get("EDGECAM_MAX_IMAGE_MP") or 50) * 1e6))
    except ValueError:
        return str(50_000_000)


os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", _opencv_pixel_cap())
