"""Length-bucketed batches: for the fit loop as `tf.data` datasets (Batches: examples of any
length, padded per batch; GroupedBatches: examples that must come together, such as the
captions of one image; Windows: fixed-length windows over one token stream), and for
inference (predict_padded). TensorFlow is imported only when a dataset is made.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from seqkit import progress

if TYPE_CHECKING:
    import tensorflow as tf


def pad(seqs: Sequence[Sequence[int]], length: int | None = None, value: int = 0,
        multiple: int = 8) -> np.ndarray:
    """Right-pad int sequences to one length (rounded up to `multiple`, which keeps the
    number of distinct batch shapes, and so of graph retraces, small)."""
    longest = max((len(s) for s in seqs), default=0)
    length = length or max(1, math.ceil(max(1, longest) / multiple) * multiple)
    out = np.full((len(seqs), length), value, dtype=np.int32)
    for i, seq in enumerate(seqs):
        seq = seq[:length]
        out[i, : len(seq)] = seq
    return out


def pad_nested(seqs: Sequence[Sequence[Sequence[int]]], multiple: int = 8) -> np.ndarray:
    """Right-pad sequences of int sequences (e.g. the characters of each word) to a
    (count, time, width) array; both lengths rounded up to `multiple`."""
    longest = max((len(s) for s in seqs), default=0)
    widest = max((len(w) for s in seqs for w in s), default=0)
    length = max(1, math.ceil(max(1, longest) / multiple) * multiple)
    width = max(1, math.ceil(max(1, widest) / multiple) * multiple)
    out = np.zeros((len(seqs), length, width), dtype=np.int32)
    for i, seq in enumerate(seqs):
        for j, word in enumerate(seq[:length]):
            out[i, j, : len(word)] = word
    return out


def pad_column(values: Sequence, multiple: int = 8) -> np.ndarray:
    """Pad one batch of a column: int sequences to 2-D, sequences of sequences to 3-D."""
    nested = any(len(s) and isinstance(s[0], (list, tuple, np.ndarray)) for s in values)
    return (pad_nested(values, multiple=multiple) if nested
            else pad(values, multiple=multiple))


class Batches:
    """Length-bucketed batches for `model.fit`, as a `tf.data.Dataset`.

    `columns` maps names to per-example values: lists of int sequences (padded per
    batch) or scalars. `structure(batch, rng)` turns a dict of padded arrays into what the
    model takes, e.g. `lambda b, rng: (b["tokens"], b["label"])`; `rng` is a NumPy generator
    seeded by (seed, epoch), for random changes to a batch (word dropout, image shifts) that
    a resumed run repeats exactly. Each epoch shuffles the
    examples, sorts them by length within windows of 50 batches, and shuffles the
    batches, so padding stays small and the order still changes from epoch to epoch.
    """

    WINDOW = 50

    def __init__(self, columns: dict[str, Sequence], lengths: Sequence[int], batch_size: int,
                 structure: Callable[[dict, np.random.Generator], tuple],
                 shuffle: bool = True, seed: int = 0):
        self.columns = {k: (v if _is_sequence_column(v) else np.asarray(v))
                        for k, v in columns.items()}
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.structure = structure
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    @property
    def tokens(self) -> int:
        return int(self.lengths.sum())

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        return self._bucket(self.lengths, self.batch_size, epoch)

    def _bucket(self, lengths: np.ndarray, size: int, epoch: int) -> list[np.ndarray]:
        """Indices into `lengths` in chunks of `size`: sorted by length (no shuffle), or
        shuffled, sorted within windows of WINDOW chunks, and the chunks shuffled."""
        n = len(lengths)
        if not self.shuffle:
            order = np.argsort(lengths, kind="stable")
            return [order[i:i + size] for i in range(0, n, size)]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n)
        window = size * self.WINDOW
        batches = []
        for start in range(0, n, window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        rng.shuffle(batches)
        return batches

    def make_batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, col in self.columns.items():
            if isinstance(col, np.ndarray):
                out[name] = col[idx]
            else:
                out[name] = pad_column([col[i] for i in idx])
        return out

    def _generate(self):
        epoch = self.epoch
        self.epoch += 1
        rng = np.random.default_rng([self.seed, epoch, 1])
        for idx in self.batch_indices(epoch):
            yield self.structure(self.make_batch(idx), rng)

    def sample(self):
        """A batch of two examples in the structure the model takes (to build it)."""
        return self.structure(self.make_batch(np.arange(min(2, len(self.lengths)))),
                              np.random.default_rng(0))

    def dataset(self) -> tf.data.Dataset:
        import tensorflow as tf

        signature = tf.nest.map_structure(
            lambda a: tf.TensorSpec(shape=(None,) * a.ndim, dtype=tf.as_dtype(a.dtype)),
            self.sample())
        return _finish(tf.data.Dataset.from_generator(self._generate,
                                                      output_signature=signature), len(self))


class GroupedBatches(Batches):
    """Batches in which the examples of one group (the captions of one image) always come
    together, so that work done per group (encoding the image) is done once per batch.

    Each batch holds whole groups, about batch_size examples in all: batch_size divided by
    the mean group size, rounded, groups per batch (at least one), so the batch count is the
    same every epoch. Groups are bucketed by their longest example, as Batches buckets
    examples; `batch_indices` gives the examples of each batch, group by group.
    """

    def __init__(self, columns: dict[str, Sequence], lengths: Sequence[int],
                 groups: Sequence[int], batch_size: int, structure: Callable[[dict], tuple],
                 shuffle: bool = True, seed: int = 0):
        super().__init__(columns, lengths, batch_size, structure, shuffle, seed)
        groups = np.asarray(groups)
        order = np.argsort(groups, kind="stable")
        self.members = np.split(order, np.flatnonzero(np.diff(groups[order])) + 1)
        self.group_lengths = np.array([self.lengths[m].max() for m in self.members])
        self.groups_per_batch = max(1, round(batch_size * len(self.members) / len(order)))

    def __len__(self) -> int:
        return math.ceil(len(self.members) / self.groups_per_batch)

    def batch_indices(self, epoch: int) -> list[np.ndarray]:
        return [np.concatenate([self.members[g] for g in chunk])
                for chunk in self._bucket(self.group_lengths, self.groups_per_batch, epoch)]


class Windows:
    """Fixed-length windows over one token stream, for truncated backpropagation through
    time, as a `tf.data.Dataset` of (inputs, targets) with targets shifted by one token.

    With shuffle (training), each epoch cuts the stream at a new random offset in
    [0, length) and visits the windows in a new order, so no token is always first in its
    window; the window count stays the same every epoch. Without shuffle, windows start at
    token 0 and run in order. A stream shorter than two windows makes one shorter window.

    With shuffle, an epoch covers at least `min_tokens` tokens: a shorter stream is gone
    through several times, each pass at its own offset, so that a schedule counted in
    epochs gives a small text as many steps as a large one.

    `contiguous` (training that carries the RNN states from batch to batch): the stream is
    cut into `batch_size` equal rows, and batch i holds window i of each row, so each row
    of a batch continues the same row of the batch before; a pass starts at a random offset
    (with shuffle) and visits the windows in order. Every batch has the same rows; a row
    shorter than `length` shortens the windows.
    """

    def __init__(self, stream: Sequence[int], length: int, batch_size: int,
                 shuffle: bool = True, seed: int = 0, min_tokens: int = 0,
                 contiguous: bool = False):
        self.stream = np.asarray(stream, dtype=np.int32)
        span = len(self.stream) - 1  # tokens that can be predicted
        if span < 1:
            raise ValueError("a token stream needs at least two tokens")
        self.contiguous = contiguous
        self.rows = min(batch_size, span) if contiguous else 1
        self.length = min(length, span // self.rows)
        row_span = self.row_span = span // self.rows  # the whole stream if not contiguous
        self.shifting = shuffle and row_span >= 2 * self.length
        # with a moving offset the last window must still fit when the offset is length - 1
        self.count = (row_span - self.length + 1) // self.length if self.shifting else \
            row_span // self.length  # windows per row
        self.passes = max(1, math.ceil(min_tokens / (self.count * self.length * self.rows))) \
            if shuffle else 1
        self.batch_size = self.rows if contiguous else batch_size
        self.shuffle, self.seed = shuffle, seed
        self.epoch = 0

    def __len__(self) -> int:
        if self.contiguous:
            return self.count * self.passes
        return math.ceil(self.count * self.passes / self.batch_size)

    @property
    def tokens(self) -> int:
        return self.count * self.length * self.rows * self.passes

    def batch_starts(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        passes, batches = [], []  # window starts per pass; contiguous: the batches
        for _ in range(self.passes):
            offset = int(rng.integers(self.length)) if self.shifting else 0
            if self.contiguous:
                rows = offset + self.row_span * np.arange(self.rows)
                batches += [rows + self.length * i for i in range(self.count)]
                continue
            starts = offset + self.length * np.arange(self.count)
            if self.shuffle:
                starts = starts[rng.permutation(self.count)]
            passes.append(starts)
        if self.contiguous:
            return batches
        starts = np.concatenate(passes)
        return [starts[i:i + self.batch_size] for i in range(0, len(starts), self.batch_size)]

    def make_batch(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = starts[:, None] + np.arange(self.length)  # (batch, length)
        return self.stream[index], self.stream[index + 1]

    def _generate(self):
        epoch = self.epoch
        self.epoch += 1
        for starts in self.batch_starts(epoch):
            yield self.make_batch(starts)

    def dataset(self) -> tf.data.Dataset:
        import tensorflow as tf

        # stateful training's states have a fixed batch size: so must the batches' shape
        spec = tf.TensorSpec(shape=(self.rows if self.contiguous else None, None),
                             dtype=tf.int32)
        return _finish(tf.data.Dataset.from_generator(self._generate,
                                                      output_signature=(spec, spec)), len(self))

    def sample(self):
        return self.make_batch(self.batch_starts(0)[0][:2])


def _finish(ds: tf.data.Dataset, batches: int) -> tf.data.Dataset:
    """The batches as fit takes them: counted, prefetched, and, under tf.distribute, each
    batch split among the replicas (every worker makes the same batches from the same
    seed, and the DATA policy gives each its share of every batch: the global batch)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(2)
    return ds.with_options(options)


def _is_sequence_column(values: Sequence) -> bool:
    return len(values) > 0 and isinstance(values[0], (list, tuple, np.ndarray))


def predict_padded(model, seqs: Sequence[Sequence[int]] | dict[str, Sequence],
                   batch_size: int = 256) -> list[np.ndarray]:
    """Run `model` over int sequences in length-sorted, padded batches.

    `seqs` is one list of sequences, or a dict of such columns for a model with named
    inputs (lengths come from the first column). Returns one array per input, in input
    order; outputs with a time axis are cut back to each input's own length. Inputs must
    be non-empty.
    """
    columns = seqs if isinstance(seqs, dict) else None
    seqs = next(iter(columns.values())) if columns else seqs
    order = np.argsort([len(s) for s in seqs], kind="stable")
    # Keras retraces its function for each new shape; a graph on ONNX Runtime does not,
    # and there the extra padded steps are only extra work.
    multiple = getattr(model, "pad_multiple", 8)
    results: list = [None] * len(seqs)
    progress.expect(len(order))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if columns:
            batch = {k: pad_column([col[i] for i in idx], multiple)
                     for k, col in columns.items()}
        else:
            batch = pad([seqs[i] for i in idx], multiple=multiple)
        out = np.asarray(model.predict_on_batch(batch))
        for row, i in zip(out, idx):
            results[i] = row[: len(seqs[i])] if row.ndim >= 2 else row
        progress.advance(len(idx))
    return results
