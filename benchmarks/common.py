"""Helpers shared by the benchmark scripts (run by hand, never by the test suite)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("SEQKIT_DATASETS", ROOT.parent / "shared" / "datasets"))


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"benchmark data not found: {path} (set SEQKIT_DATASETS to the datasets folder)")
    return path


def threads_env(threads: int) -> dict[str, str]:
    """Limit a process's CPU threads (TensorFlow's pools and OpenMP/oneDNN); set before
    TensorFlow loads."""
    return {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": str(threads)}


def steady_tokens_per_second(tokens: int, epoch_seconds: list[float]) -> float:
    """Throughput over the epochs after the first (which pays for graph tracing)."""
    steady = epoch_seconds[1:] or epoch_seconds
    return tokens / statistics.median(steady)


class EpochTimer:
    """A Keras callback that records wall time per epoch (for the plain-Keras baselines)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _Timer()


def setup_logging() -> None:
    import logging

    from seqkit.cli import setup_logging as cli_logging

    cli_logging(debug=False, quiet=False)
    logging.getLogger("seqkit").info("datasets: %s", DATASETS)
