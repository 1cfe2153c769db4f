"""The shared task harness: every task goes train (1 epoch) -> save -> load -> predict.

A saved model directory is moved (the unit users carry around) and loaded again; it must
give the same outputs. A task adds a `TaskCase` to CASES in test_tasks.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class TaskCase:
    name: str
    train: Callable  # (data_dir, out_dir) -> None, one quick epoch
    predict: Callable  # (model_dir, inputs) -> list of JSON-able records, one per input
    inputs: list
