"""Importing TensorFlow once per process, and keeping its native logging off stderr.

TensorFlow's C++ side writes CUDA probes, absl warnings and oneDNN notes straight to file
descriptor 2, at import and later, whenever an op first runs (TF_CPP_MIN_LOG_LEVEL does not
reach all of them). In the `seqkit` command (`owns_process`), unless --debug, fd 2 points at
/dev/null from the moment the options are parsed to the end of the process, and Python's
`sys.stderr` writes to a copy of the real stderr: stderr holds only seqkit's own lines,
whichever module imports TensorFlow first. Used as a library,
the process's stderr is the caller's, so fd 2 is borrowed only while TensorFlow loads.
"""

from __future__ import annotations

import os
import sys


# set by `seqkit --debug` (a module flag, not an environment variable, so that it does not
# leak into child processes)
debug = False
# set by the `seqkit` entry point: this process is ours, and so is its fd 2
owns_process = False
# fd 2 is /dev/null for good (keep_native_logs_off_stderr)
guarded = False


def load_tensorflow() -> None:
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if debug:
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if guarded:
        import tensorflow as tf

        tf.config.list_physical_devices()
        return
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


def keep_native_logs_off_stderr() -> bool:
    """Point fd 2 at /dev/null for the rest of the process and give `sys.stderr` a copy of
    the real stderr. False (and nothing changed) when stderr is not fd 2 of this process."""
    global guarded
    if guarded:
        return True
    try:
        if sys.stderr.fileno() != 2:
            return False
    except (AttributeError, ValueError, OSError):
        return False
    sys.stderr.flush()
    real = os.dup(2)
    sys.stderr = open(real, "w", encoding="utf-8", errors="backslashreplace", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    guarded = True
    return True
