"""Training on several devices or machines: `train --distribute` with tf.distribute.

    auto          multi-worker when TF_CONFIG names a cluster of two or more tasks,
                  mirrored when more than one GPU is visible, otherwise none
    mirrored      one process, every local GPU (MirroredStrategy)
    multi-worker  one process per machine (MultiWorkerMirroredStrategy): every worker runs
                  the same command with the same -o and its own TF_CONFIG

`--batch-size` stays the global batch: each batch is split among the replicas, and their
gradients are summed, so a recipe trains the same model on one device or eight.

On a cluster the chief (the task named "chief", else worker 0) is the only one that
writes: MODEL_DIR, its checkpoints, logs and pictures. It reads the data and the
interrupted run (--resume) and hands every worker what they need to take the same steps:
the config and preprocessor (share), then the weights and optimizer state
(share_variables), so the others need neither the model directory nor a shared disk.
A worker that dies makes the others fail at once; one that hangs, after the collective
timeout (SEQKIT_WORKER_TIMEOUT seconds, default 600); one that never starts, after the
same time at start-up (a watchdog, `_deadline`). Each is one line, never a wait forever.

What a GPU changes besides (mixed precision, cuDNN kernels) is in seqkit.gpu.

Keras 3 (3.15) does not run `fit` under a distribution strategy as released
(keras-team/keras#20585): it builds a model by all-reducing one batch of data, which
fails when the replicas' shares of a batch differ in size, and with several workers it
means scalar metrics over an axis they do not have. `Run.prepare_fit` and
`_fix_multi_worker_reduce` work around both; each checks that the Keras internal it
replaces is still there and refuses to train otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from seqkit.choices import DISTRIBUTE as MODES
from seqkit.errors import ConfigError

log = logging.getLogger("seqkit")

TIMEOUT_VARIABLE = "SEQKIT_WORKER_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
_JOBS = ("chief", "worker")


@dataclass(frozen=True)
class Cluster:
    """TF_CONFIG, checked: the training jobs' addresses and this process's task."""
    jobs: dict[str, list[str]]
    task_type: str
    index: int

    @property
    def size(self) -> int:
        return sum(len(self.jobs.get(job, [])) for job in _JOBS)

    @property
    def chief(self) -> bool:
        if self.jobs.get("chief"):
            return self.task_type == "chief"
        return self.task_type == "worker" and self.index == 0

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.index}"


def read_cluster(environ: Mapping[str, str] = os.environ) -> Cluster | None:
    """The cluster TF_CONFIG describes, or None when it is unset or names no cluster."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    jobs = spec.get("cluster") or {}
    if not jobs:
        return None
    if not isinstance(jobs, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) and a for a in v)
            for v in jobs.values()):
        raise ConfigError("TF_CONFIG's 'cluster' must map job names to lists of "
                          "'host:port' addresses")
    other = sorted(set(jobs) - set(_JOBS) - {"evaluator"})
    if other:
        raise ConfigError(f"TF_CONFIG names job(s) {', '.join(other)}: seqkit trains with "
                          "'chief' and 'worker' jobs only (no parameter servers)")
    task = spec.get("task")
    if not isinstance(task, dict) or task.get("type") not in jobs:
        raise ConfigError(f"TF_CONFIG's 'task' must name this process's job, one of "
                          f"{', '.join(sorted(jobs))}, and its index, e.g. "
                          '{"type": "worker", "index": 0}')
    index = task.get("index", 0)
    if not isinstance(index, int) or not 0 <= index < len(jobs[task["type"]]):
        raise ConfigError(f"TF_CONFIG's task index {index!r} is not among the "
                          f"{len(jobs[task['type']])} '{task['type']}' addresses")
    if task["type"] not in _JOBS:
        raise ConfigError(f"TF_CONFIG's task type {task['type']!r}: seqkit's train runs "
                          "as 'chief' or 'worker'")
    return Cluster({k: list(v) for k, v in jobs.items()}, task["type"], index)


def local_cluster(workers: int) -> list[str]:
    """TF_CONFIG for each of `workers` processes on this machine (free ports on 127.0.0.1):
    a cluster to try multi-worker training on (the tests and the benchmark use it)."""
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [json.dumps({"cluster": {"worker": addresses},
                        "task": {"type": "worker", "index": index}})
            for index in range(workers)]


def resolve_mode(mode: str, cluster: Cluster | None, gpus: int) -> str:
    """The strategy `--distribute MODE` means on this machine."""
    if mode not in MODES:
        raise ConfigError(f"--distribute must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        if cluster is not None and cluster.size > 1:
            return "multi-worker"
        return "mirrored" if gpus > 1 else "none"
    if mode == "multi-worker" and cluster is None:
        raise ConfigError("--distribute multi-worker needs TF_CONFIG to name the cluster "
                          "and this worker (see the README's 'Training on a cluster')")
    return mode


def timeout() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"{TIMEOUT_VARIABLE} must be a number of seconds > 0, got {text!r}")
    return value


class Run:
    """The strategy a training runs under, and what its workers exchange."""

    def __init__(self, strategy, mode: str, cluster: Cluster | None):
        self.strategy, self.mode, self.cluster = strategy, mode, cluster
        self.chief = cluster.chief if mode == "multi-worker" else True
        self.replicas = strategy.num_replicas_in_sync
        self.workers = cluster.size if mode == "multi-worker" else 1
        self._broadcast = None

    def scope(self):
        return self.strategy.scope()

    @property
    def name(self) -> str:
        return self.cluster.name if self.mode == "multi-worker" else "the process"

    def _from_chief(self, array: np.ndarray) -> np.ndarray:
        """The chief's `array` on every worker (the others pass one of the same shape and
        dtype): a sum over the replicas in which only the first contributes."""
        import tensorflow as tf

        if self._broadcast is None:
            def step(v):
                context = tf.distribute.get_replica_context()
                mine = tf.where(tf.equal(context.replica_id_in_sync_group, 0), v,
                                tf.zeros_like(v))
                return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)

            self._broadcast = tf.function(lambda v: self.strategy.run(step, args=(v,)),
                                          reduce_retracing=True)
        out = self._broadcast(tf.constant(array))
        return self.strategy.experimental_local_results(out)[0].numpy()

    def agree(self, flag: bool) -> bool:
        """The chief's `flag` on every worker: decisions that must be the same everywhere
        (a time limit), or the workers would wait for each other forever."""
        if self.workers == 1:
            return flag
        return bool(self._from_chief(np.array([int(flag)], np.int32))[0])

    def share(self, value: Any = None) -> Any:
        """The chief's `value` (anything JSON can hold) on every worker."""
        if self.workers == 1:
            return value
        data = (np.frombuffer(json.dumps(value).encode(), np.uint8).astype(np.int32)
                if self.chief else np.zeros(0, np.int32))
        size = int(self._from_chief(np.array([len(data)], np.int32))[0])
        if not self.chief:
            data = np.zeros(size, np.int32)
        return json.loads(self._from_chief(data).astype(np.uint8).tobytes())

    def share_variables(self, variables) -> None:
        """Give every worker's copy of `variables` the chief's values (one exchange per
        kind of number: floats as they are, integers as int64)."""
        if self.workers == 1:
            return
        values = [np.asarray(v) for v in variables]
        for kind in ("float", "int"):
            chosen = [i for i, v in enumerate(values) if (v.dtype.kind == "f") == (kind == "float")]
            if not chosen:
                continue
            wide = np.float64 if kind == "float" else np.int64
            flat = self._from_chief(np.concatenate([values[i].astype(wide).ravel()
                                                    for i in chosen]))
            offset = 0
            for i in chosen:
                size = values[i].size
                part = flat[offset:offset + size].reshape(values[i].shape)
                variables[i].assign(part.astype(values[i].dtype))
                offset += size

    def prepare_fit(self, model, batch) -> None:
        """Build `model`'s metrics, loss and optimizer from one local `batch` (numpy, in
        the dataset's structure) and stop `fit` from building them again with an
        all-reduce of the first distributed batch (see the module's docstring)."""
        if not hasattr(model, "_symbolic_build"):
            raise ConfigError(_CHANGED.format(version=_keras_version()))
        with self.scope():
            model._symbolic_build(data_batch=batch)
        model._maybe_symbolic_build = lambda *args, **kwargs: None

    def local_copy(self, model, custom_objects: dict | None = None):
        """`model` outside the strategy, for what one process does alone (scoring,
        export, saving): a distributed model's predict gathers from every worker."""
        import keras

        with tempfile.TemporaryDirectory(prefix="seqkit-") as tmp:
            path = Path(tmp) / "model.keras"
            model.save(path)
            return keras.saving.load_model(path, custom_objects=custom_objects)


_CHANGED = ("Keras {version} changed the internals seqkit works around to train under "
            "tf.distribute (keras-team/keras#20585): train with --distribute none")
_RUN: Run | None = None


def _keras_version() -> str:
    import keras

    return keras.__version__


def start(mode: str = "auto") -> Run | None:
    """The Run for `--distribute mode` (None: no strategy). TensorFlow allows one
    multi-worker strategy per process, made before any other TensorFlow operation: a
    process that trains several models on a cluster (seqkit compare) keeps its first."""
    global _RUN
    import tensorflow as tf

    cluster = read_cluster()
    mode = resolve_mode(mode, cluster, gpus())
    if _RUN is not None and _RUN.mode == "multi-worker":
        if mode != "multi-worker":
            raise ConfigError("this process already trains on a cluster: every training "
                              "in it must use --distribute multi-worker")
        return _RUN
    if mode == "none":
        _RUN = None
        return None
    if mode == "multi-worker":
        _fix_multi_worker_reduce()
        seconds = timeout()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=seconds)
        with _deadline(seconds, f"{cluster.name}: the cluster did not come together within "
                                f"{seconds:g} s ({TIMEOUT_VARIABLE}): start the same command "
                                "on every worker TF_CONFIG names"):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    else:
        devices = (tf.config.list_logical_devices("GPU")
                   or tf.config.list_logical_devices("CPU"))
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    _RUN = Run(strategy, mode, cluster)
    log.info("distributed training (%s): %d replica(s) on %d worker(s)%s", mode,
             _RUN.replicas, _RUN.workers,
             f"; this is {cluster.name}" + (", the chief" if _RUN.chief else "")
             if mode == "multi-worker" else "")
    return _RUN


@contextlib.contextmanager
def _deadline(seconds: float, message: str):
    """End this process with `message` (one line on stderr) if the block has not ended
    after `seconds`. Making a multi-worker strategy waits, inside TensorFlow and holding
    the interpreter, for every worker to connect, far longer than anyone waits at a
    terminal, and no Python thread or signal handler runs meanwhile: a small watchdog
    process does it (SIGKILL: TensorFlow's preemption handler keeps SIGTERM)."""
    import subprocess
    import sys

    code = ("import os, signal, sys, time; time.sleep(float(sys.argv[1])); "
            "sys.stderr.write('seqkit: error: ' + sys.argv[2] + chr(10)); "
            "os.kill(int(sys.argv[3]), signal.SIGKILL)")
    watchdog = subprocess.Popen([sys.executable, "-c", code, str(seconds), message,
                                 str(os.getpid())], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=sys.stderr)  # not fd 2: runtime
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


def gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def current() -> Run | None:
    return _RUN


def scope():
    return _RUN.scope() if _RUN is not None else contextlib.nullcontext()


def local_model(model, custom_objects: dict | None = None):
    """`model`, or its copy outside the strategy when one is running."""
    return model if _RUN is None else _RUN.local_copy(model, custom_objects)


def _fix_multi_worker_reduce() -> None:
    """With several workers, Keras 3.15 averages each step's scalar logs `over axis 0`
    across workers, which scalars do not have: average them across the workers only."""
    from keras.src.backend.tensorflow import trainer

    original = getattr(trainer, "reduce_per_replica", None)
    is_multi_worker = getattr(trainer, "_collective_all_reduce_multi_worker", None)
    if original is None or is_multi_worker is None:
        raise ConfigError(_CHANGED.format(version=_keras_version()))
    if getattr(original, "seqkit", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            import tensorflow as tf

            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.seqkit = True
    trainer.reduce_per_replica = reduce_per_replica
