"""The allocator tuning that keeps image temporaries in the heap takes effect where glibc runs."""

from __future__ import annotations

import platform

import pytest

from readerboard.allocator import tune_for_image_work


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds():
    assert tune_for_image_work() is True
    assert tune_for_image_work() is True  # and again: the servers call it once per process, tests many times
