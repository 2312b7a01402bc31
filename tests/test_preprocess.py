"""The geometric preprocessing and the top-k selection the whole pipeline relies on."""
from __future__ import annotations

import numpy as np

from edgecam.base.preprocess import center_crop_resize
from edgecam.runtime.classifier import Selection, softmax


def test_centre_crop_keeps_the_middle_square_of_a_wide_frame() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, 280:1000] = 200  # the centred 720×720 square is bright, the sides dark
    out = center_crop_resize(frame, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out.min() == 200


def test_small_and_tall_frames_are_enlarged_to_the_input_size() -> None:
    tall = np.random.default_rng(0).integers(0, 256, (300, 100, 3), np.uint8)
    assert center_crop_resize(tall, 224).shape == (224, 224, 3)
    exact = np.ones((224, 224, 3), np.uint8)
    assert np.array_equal(center_crop_resize(exact, 224), exact)


def test_top_k_is_sorted_and_labelled() -> None:
    logits = np.array([0.1, 3.0, -1.0, 2.0], np.float32)
    probabilities = softmax(logits)
    assert abs(probabilities.sum() - 1) < 1e-6
    best = Selection(3).pick(probabilities, ["a", "b", "c", "d"])
    assert [t.label for t in best] == ["b", "d", "a"]
    assert [t.index for t in best] == [1, 3, 0]
    assert best[0].score > best[1].score > best[2].score
    assert len(Selection(10).pick(probabilities, ["a", "b", "c", "d"])) == 4


def test_fast_halving_downscale_stays_within_a_grey_level_of_a_direct_inter_area() -> None:
    import cv2

    from edgecam.base.samples import DemoClip

    clip = DemoClip(1280, 720)
    for index in range(0, len(clip), len(clip) // 8):
        frame = clip.frame(index)
        direct = cv2.resize(frame[:, 280:1000], (224, 224), interpolation=cv2.INTER_AREA)
        fast = center_crop_resize(frame, 224)
        assert np.abs(fast.astype(int) - direct.astype(int)).mean() < 1.0, index
