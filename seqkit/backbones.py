"""The one RNN stack every task builds on: SimpleRNN, GRU or LSTM cells, stacked,
optionally bidirectional, with dropout between layers.

    x = embedding(ids)                                   # (batch, time, dim), carries a mask
    seq, states = apply_backbone(x, spec, return_sequences=True, return_state=True)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import keras
from keras import ops

from seqkit import choices
from seqkit.config import Recurrent, Stack
from seqkit.errors import ConfigError

CELLS = choices.CELLS
_LAYERS = {"simple_rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU,
           "lstm": keras.layers.LSTM}


@dataclass
class BackboneSpec(Stack, Recurrent):
    """The backbone's keys (config.Recurrent and config.Stack), taken from a task's Config."""
    bidirectional: bool = False

    @classmethod
    def from_config(cls, config) -> "BackboneSpec":
        """Take the backbone fields from a task Config (one without Stack keys: one layer,
        one direction)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)
                      if hasattr(config, f.name)})

    @property
    def state_count(self) -> int:
        """States one direction of the last layer returns: (h, c) for LSTM, (h,) otherwise."""
        return 2 if self.cell == "lstm" else 1

    @property
    def output_units(self) -> int:
        return self.units * (2 if self.bidirectional else 1)


def rnn_layer(spec: BackboneSpec, *, units: int | None = None, return_sequences: bool,
              return_state: bool = False, stateful: bool = False,
              name: str) -> keras.layers.Layer:
    # Keras's unit_forget_bias starts an LSTM's forget gates at bias 1 (sigma(1) = 0.73 per
    # step); another forget_bias starts them elsewhere (5: 0.993, memory over hundreds of steps)
    gates = ({"unit_forget_bias": False, "bias_initializer": ForgetBias(spec.forget_bias)}
             if spec.cell == "lstm" and spec.forget_bias != 1.0 else {})
    return _LAYERS[spec.cell](
        units or spec.units,
        return_sequences=return_sequences,
        return_state=return_state,
        recurrent_dropout=spec.recurrent_dropout,
        stateful=stateful,
        name=name,
        **gates,
    )


@keras.saving.register_keras_serializable(package="seqkit")
class ForgetBias(keras.initializers.Initializer):
    """An LSTM's bias (input, forget, cell, output gates, in Keras's order): `value` for the
    forget gates, 0 elsewhere."""

    def __init__(self, value: float = 1.0):
        self.value = float(value)

    def __call__(self, shape, dtype=None):
        units = shape[0] // 4
        gates = [ops.zeros((units,)), ops.full((units,), self.value), ops.zeros((2 * units,))]
        return ops.cast(ops.concatenate(gates), dtype or "float32")

    def get_config(self):
        return {"value": self.value}


def apply_backbone(x, spec: BackboneSpec, *, return_sequences: bool,
                   return_state: bool = False, stateful: bool = False,
                   name: str = "backbone"):
    """Run `x` (batch, time, dim) through the stack.

    `stateful`: each layer starts a batch from the states the previous batch ended with
    (Keras's stateful RNNs: `x` needs a fixed batch size; reset_states() zeroes them).

    Returns (outputs, states): outputs is (batch, time, out_units) with return_sequences,
    else the final output (batch, out_units). states lists the last layer's final states
    (forward then backward when bidirectional), empty unless return_state.
    """
    spec.validate()
    states: list = []
    for i in range(spec.layers):
        last = i == spec.layers - 1
        layer = rnn_layer(
            spec, return_sequences=return_sequences or not last,
            return_state=return_state and last, stateful=stateful,
            name=f"{name}_{spec.cell}_{i}",
        )
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}_bidirectional_{i}")
        out = layer(x)
        if return_state and last:
            x, *states = out
        else:
            x = out
        if spec.dropout > 0:
            x = keras.layers.Dropout(spec.dropout, name=f"{name}_dropout_{i}")(x)
    return x, states


@keras.saving.register_keras_serializable(package="seqkit")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over time that ignores padded steps (Keras's GlobalMaxPooling1D ignores the mask)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):  # (batch, time, units) -> (batch, units)
        if mask is not None:
            keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
            inputs = ops.where(keep, inputs, ops.full_like(inputs, -1e9))
        return ops.max(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="seqkit")
class TokenConcatenate(keras.layers.Concatenate):
    """Features side by side, masked as the first input (the token embedding) is. Keras's
    Concatenate gives an unmasked input (character, bigram or shape features) an all-True
    mask and ORs the masks together, so the recurrent layers would read padding as tokens,
    and a sentence's outputs would depend on how long the others in its batch are."""

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]


@keras.saving.register_keras_serializable(package="seqkit")
class ZeroPadded(keras.layers.Layer):
    """Embeddings (batch, time, chars, dim) with the padding characters' rows zeroed, given
    the char ids: what a convolution's own zero padding past a word's end sees too, so a
    word's character features do not depend on how wide its batch is padded."""

    def call(self, inputs):
        features, char_ids = inputs
        return features * ops.expand_dims(ops.cast(char_ids > 0, features.dtype), -1)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="seqkit")
class CharPool(keras.layers.Layer):
    """Max over the characters of each word, skipping padding characters:
    (batch, time, chars, filters) + char ids (batch, time, chars) -> (batch, time, filters)."""

    def call(self, inputs):
        features, char_ids = inputs
        real = ops.expand_dims(char_ids > 0, -1)
        pooled = ops.max(ops.where(real, features, ops.full_like(features, -1e9)), axis=2)
        return ops.where(ops.any(real, axis=2), pooled, ops.zeros_like(pooled))

    def compute_output_shape(self, input_shapes):
        shape = input_shapes[0]
        return (shape[0], shape[1], shape[3])


def pool_sequence(seq, pooling: str, name: str = "pool"):
    """Reduce (batch, time, units) to (batch, units) over the unmasked steps."""
    if pooling == "max":
        return MaskedGlobalMaxPooling1D(name=name)(seq)
    if pooling == "mean":
        return keras.layers.GlobalAveragePooling1D(name=name)(seq)
    raise ConfigError(f"pooling must be last, max or mean, got {pooling!r}")
