"""edgecam: live image classification on a Raspberry Pi or Jetson CPU."""

import os

from edgecam.base.errors import SourceError
from edgecam.base.imagesize import DEFAULT_MP, max_pixels

__version__ = "0.1.0"

# OpenCV reads its decoding cap once, when it loads (before any edgecam module imports cv2): an
# image whose header promises more pixels is not decoded. edgecam.base.imageio refuses such files
# itself, with a clearer message, for every format it reads a header of; this covers the rest. A
# malformed EDGECAM_MAX_IMAGE_MP is reported by imageio when an image is read.
try:
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(max_pixels()))
except SourceError:
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MP * 1_000_000))
