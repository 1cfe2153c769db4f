"""A linear-chain CRF output layer for Keras 3 (which has none), written with keras.ops.

The layer holds the transition scores; the emission scores come from the layer before it
(a Dense with one unit per tag). Called with gold tags it adds the negative
log-likelihood (forward algorithm) as the model's loss; called without, it returns the
Viterbi path, one-hot, so that argmax over the last axis reads it like softmax output.

    emissions = keras.layers.Dense(n_tags, name="emissions")(seq)   # (batch, time, tags)
    crf = CRF(name="crf")
    train_out = crf(emissions, tags=gold)     # training model: loss = mean NLL
    best_path = crf(emissions)                # inference model: (batch, time, tags) one-hot

Padding is given by `mask` (batch, time), True on real steps and right-aligned: padded
steps add nothing to the score, the partition function or the path. The recursions use
tf.scan, so the layer needs the TensorFlow backend.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _time_major(x):
    return ops.moveaxis(x, 1, 0)


def sequence_score(emissions, tags, mask, transitions, start, end):
    """Score of the given tag paths: (batch,). mask is float (batch, time), 1 on real steps."""
    n_tags = ops.shape(emissions)[-1]
    one_hot = ops.one_hot(tags, n_tags, dtype=emissions.dtype)  # (batch, time, tags)
    emitted = ops.sum(ops.sum(emissions * one_hot, axis=-1) * mask, axis=1)
    # transitions[tags[t-1], tags[t]] for t >= 1, kept where step t is real
    pair = ops.einsum("bti,ij,btj->bt", one_hot[:, :-1], transitions, one_hot[:, 1:])
    moved = ops.sum(pair * mask[:, 1:], axis=1)
    last = ops.cast(ops.sum(mask, axis=1), "int32") - 1  # (batch,)
    last_tag = ops.take_along_axis(tags, ops.expand_dims(last, 1), axis=1)[:, 0]
    first = ops.take(start, tags[:, 0])
    return emitted + moved + first + ops.take(end, last_tag)


def log_partition(emissions, mask, transitions, start, end):
    """log of the sum over all tag paths of exp(score): (batch,). Forward algorithm."""
    alpha = start + emissions[:, 0]  # (batch, tags)

    def step(alpha, inputs):
        emit, keep = inputs  # (batch, tags), (batch, 1)
        scores = ops.expand_dims(alpha, 2) + transitions  # (batch, from, to)
        new = ops.logsumexp(scores, axis=1) + emit
        return keep * new + (1.0 - keep) * alpha  # padded steps carry alpha through

    # tf.scan, since keras.ops.scan on TensorFlow needs a static number of steps
    alphas = tf.scan(step, (_time_major(emissions[:, 1:]),
                            _time_major(ops.expand_dims(mask[:, 1:], -1))), initializer=alpha)
    alpha = ops.concatenate([ops.expand_dims(alpha, 0), alphas], axis=0)[-1]
    return ops.logsumexp(alpha + end, axis=1)


def viterbi(emissions, mask, transitions, start, end):
    """The best tag path for each sequence: (batch, time) int32. Padded steps repeat the
    last real tag."""
    n_tags = ops.shape(emissions)[-1]
    delta = start + emissions[:, 0]  # (batch, tags)
    stay = ops.expand_dims(ops.arange(n_tags, dtype="int32"), 0)  # (1, tags)

    def forward(carry, inputs):
        delta, _ = carry
        emit, keep = inputs  # (batch, tags), (batch, 1) float
        scores = ops.expand_dims(delta, 2) + transitions  # (batch, from, to)
        best = ops.cast(ops.argmax(scores, axis=1), "int32")  # (batch, to)
        real = ops.cast(keep, "bool")
        return (ops.where(real, ops.max(scores, axis=1) + emit, delta),
                ops.where(real, best, stay))

    deltas, pointers = tf.scan(
        forward, (_time_major(emissions[:, 1:]), _time_major(ops.expand_dims(mask[:, 1:], -1))),
        initializer=(delta, ops.zeros_like(delta, dtype="int32")))  # (time - 1, batch, tags)
    delta = ops.concatenate([ops.expand_dims(delta, 0), deltas], axis=0)[-1]
    last = ops.cast(ops.argmax(delta + end, axis=1), "int32")  # (batch,)

    def backward(tag, pointer):  # tag at step t + 1 -> tag at step t
        return ops.take_along_axis(pointer, ops.expand_dims(tag, 1), axis=1)[:, 0]

    earlier = tf.scan(backward, pointers, initializer=last, reverse=True)  # (time - 1, batch)
    return ops.concatenate([ops.moveaxis(earlier, 0, 1), ops.expand_dims(last, 1)], axis=1)


@keras.saving.register_keras_serializable(package="seqkit")
class CRF(keras.layers.Layer):
    """Linear-chain CRF over emission scores (batch, time, tags); see the module doc."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        n_tags = input_shape[-1]
        self.transitions = self.add_weight(shape=(n_tags, n_tags), name="transitions",
                                           initializer="zeros")
        self.start = self.add_weight(shape=(n_tags,), name="start", initializer="zeros")
        self.end = self.add_weight(shape=(n_tags,), name="end", initializer="zeros")

    def _mask(self, emissions, mask):
        if mask is None:
            return ops.ones(ops.shape(emissions)[:2], dtype=emissions.dtype)
        return ops.cast(mask, emissions.dtype)

    def negative_log_likelihood(self, emissions, tags, mask=None):
        """(batch,) NLL of the gold tags."""
        emissions = ops.cast(emissions, "float32")
        mask = self._mask(emissions, mask)
        tags = ops.cast(tags, "int32")
        gold = sequence_score(emissions, tags, mask, self.transitions, self.start, self.end)
        total = log_partition(emissions, mask, self.transitions, self.start, self.end)
        return total - gold

    def decode(self, emissions, mask=None):
        """(batch, time) int32 Viterbi paths."""
        emissions = ops.cast(emissions, "float32")
        return viterbi(emissions, self._mask(emissions, mask), self.transitions, self.start,
                       self.end)

    def call(self, emissions, tags=None, mask=None):
        if tags is not None:
            self.add_loss(ops.mean(self.negative_log_likelihood(emissions, tags, mask)))
            return emissions
        return ops.one_hot(self.decode(emissions, mask), ops.shape(emissions)[-1])

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return input_shape
