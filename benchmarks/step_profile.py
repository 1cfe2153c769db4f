"""Where a training step's time goes (issue 20): one sentiment row of benchmarks/throughput.py
(embedding -> LSTM/GRU, one direction or both -> masked max -> softmax), the same batches
timed as

    fit        Keras's own train step (train_on_batch), as seqkit's loop runs it
    raw        a bare tf.function: forward, gradients, Adam; no Keras step machinery
    forward    the forward pass alone (training mode)
    rnn        the recurrent layer alone, forward and gradients, on the batch's embeddings
    rnn/nomask the same without the padding mask
    rnn/block  LSTM rows: the same layer's weights run by TensorFlow's own fused LSTM kernel
               (tf.raw_ops.BlockLSTM, one op a direction for the whole sequence), no mask
    raw+xla    the bare step compiled by XLA
    fit+xla    Keras's step with jit_compile (what `--set xla=true` runs)

    python benchmarks/step_profile.py [--row gru] [--batch 32] [--examples 2048] [--rounds 3]
                                      [--ops]

`--ops` then runs the `rnn` variant once more under TensorFlow's profiler and lists the
kernels its graph executed per batch (how many, and their microseconds): what the layer's
time is made of.

Milliseconds per batch, the median of --rounds passes over the same batches after a
warm-up pass (tracing, XLA's compilations); the passes alternate the order of the variants.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.throughput import sentiment_row  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", default="gru", choices=["lstm", "gru", "bilstm"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--examples", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", action="store_true", help="list the rnn variant's kernels")
    args = parser.parse_args()
    from seqkit.runtime import load_tensorflow

    load_tensorflow()
    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        row = sentiment_row(args.row, args.batch, args.examples, Path(tmp))
        plan = row.plan()
        batches = row.epoch_batches(plan.train, 0)
    model = plan.model
    rnn = next(layer for layer in model.layers
               if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)))
    embedding = model.get_layer("embedding")
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    def raw_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    def rnn_step(h, mask):
        with tf.GradientTape() as tape:
            out = rnn(h, mask=mask, training=True)
        return tape.gradient(out, rnn.trainable_variables)

    def block_step(h):
        # BlockLSTM takes the gates as i, c, f, o (Keras: i, f, c, o) and time-major input
        def gates(m):
            i, f, c, o = tf.split(m, 4, axis=-1)
            return tf.concat([i, c, f, o], axis=-1)

        def direction(layer, x):
            cell = layer.cell
            zeros = tf.zeros((tf.shape(x)[0], cell.units))
            peep = tf.zeros((cell.units,))
            out = tf.raw_ops.BlockLSTM(
                seq_len_max=tf.cast(tf.shape(x)[1], tf.int64), x=tf.transpose(x, [1, 0, 2]),
                cs_prev=zeros, h_prev=zeros,
                w=gates(tf.concat([cell.kernel.value, cell.recurrent_kernel.value], axis=0)),
                wci=peep, wcf=peep, wco=peep, b=gates(cell.bias.value), forget_bias=0.0,
                cell_clip=-1.0, use_peephole=False)
            return out[6]

        with tf.GradientTape() as tape:
            if isinstance(rnn, keras.layers.Bidirectional):
                out = [direction(rnn.forward_layer, h),
                       direction(rnn.backward_layer, tf.reverse(h, axis=[1]))]
            else:
                out = [direction(rnn, h)]
        return tape.gradient(out, rnn.trainable_variables)

    raw = tf.function(raw_step, reduce_retracing=True)
    xla = tf.function(raw_step, jit_compile=True, reduce_retracing=True)
    forward = tf.function(lambda x: model(x, training=True), reduce_retracing=True)
    rnn_fn = tf.function(rnn_step, reduce_retracing=True)
    block_fn = tf.function(block_step, reduce_retracing=True)
    fit_xla = keras.models.clone_model(model)
    fit_xla.compile(optimizer=keras.optimizers.Adam(1e-3), loss=model.loss, jit_compile=True)
    inputs = [(x, y) for x, y, *_ in batches]
    tokens = [x["tokens"] if isinstance(x, dict) else x for x, _ in inputs]
    embedded = [(embedding(t), tf.not_equal(t, 0)) for t in tokens]
    variants = {
        "fit": lambda i: model.train_on_batch(*batches[i][:2]),
        "raw": lambda i: raw(*inputs[i]),
        "forward": lambda i: forward(inputs[i][0]),
        "rnn": lambda i: rnn_fn(*embedded[i]),
        "rnn/nomask": lambda i: rnn_fn(embedded[i][0], None),
        **({"rnn/block": lambda i: block_fn(embedded[i][0])} if args.row != "gru" else {}),
        "raw+xla": lambda i: xla(*inputs[i]),
        "fit+xla": lambda i: fit_xla.train_on_batch(*batches[i][:2]),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.rounds + 1):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            for i in range(len(batches)):
                out = variants[name](i)
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            if round_:  # the first pass traces and compiles
                times[name].append((time.perf_counter() - start) / len(batches) * 1000)
    size = sum(int((t != 0).sum()) for t in tokens) / len(tokens)
    fit_ms = statistics.median(times["fit"])
    print(f"{row.name}: {len(batches)} batches of {size:.0f} tokens on average; "
          f"ms per batch, median of {args.rounds} passes")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"  {name:<11} {ms:8.2f} ms  {ms / fit_ms:6.2f} x fit")
    if args.ops:
        kernels(lambda: [variants["rnn"](i) for i in range(len(batches))], len(batches))


def kernels(run, batches: int, top: int = 15) -> None:
    """Profile `run` (it runs `batches` batches) and print the kernels the executor ran."""
    import collections
    import glob

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        run()
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(glob.glob(f"{logdir}/**/*.xplane.pb",
                                              recursive=True)[0]).read_bytes())
    micros, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?").rsplit(":", 1)[-1]  # node:kernel
                micros[name] += event.duration_ps / 1e6
                calls[name] += 1
    # the executor's "Process" spans run one ready node (or a few, inline) each and hold the
    # kernels recorded inside them; what those kernels leave is dispatch and the kernels too
    # small to be recorded
    total = micros.pop("Process", 0.0)
    print(f"rnn under the profiler: {total / batches / 1000:.2f} ms a batch in "
          f"{calls.pop('Process', 0) / batches:,.0f} executor Process spans; the recorded "
          f"kernels that took most (the rest: dispatch and unrecorded small kernels):")
    for name, value in micros.most_common(top):
        print(f"  {name:<28} {value / batches:9.1f} us {calls[name] / batches:8.1f} calls "
              f"{value / total:6.1%}")


if __name__ == "__main__":
    main()
