"""Importing TensorFlow once per process, without its native start-up chatter.

TensorFlow's C++ side writes CUDA probes and absl warnings straight to file descriptor 2
(TF_CPP_MIN_LOG_LEVEL does not reach all of them). Unless --debug is on, fd 2 points at
/dev/null while TensorFlow loads and looks for devices, so stderr holds only seqkit's lines.
"""

from __future__ import annotations

import os
import sys


# set by `seqkit --debug` (a module flag, not an environment variable, so that it does not
# leak into child processes)
debug = False


def load_tensorflow() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if debug:
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # stderr replaced (e.g. captured in tests)
        fd = 2
    sys.stderr.flush()
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
