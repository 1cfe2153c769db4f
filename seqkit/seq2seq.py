"""The conditioned RNN decoder shared by translation and caption: an embedding, one
recurrent layer started from given states, optional attention over a memory (encoder
outputs, or an image's spatial feature map), and the softmax; the one-step model that
decoding runs; and the NumPy step function around it that `seqkit.decoding` searches with.

    layers = decoder_layers(DecoderSpec(...))
    logits, states = run_decoder(layers, tokens, initial_states, [memory, keys, mask])
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from seqkit.backbones import BackboneSpec, rnn_layer

ATTENTIONS = ("bahdanau", "luong", "none")
# between the attention and the softmax: the tanh layer of older models, or the projection
OPTIONAL_LAYERS = ("attention_combine", "attention_projection")


@dataclass
class DecoderSpec:
    cell: str
    units: int
    vocab_size: int
    embedding_dim: int
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    forget_bias: float = 1.0
    attention: str = "none"  # luong (multiplicative) | bahdanau (additive) | none
    attention_units: int = 256  # bahdanau's hidden size

    @property
    def state_count(self) -> int:
        return 2 if self.cell == "lstm" else 1

    @property
    def key_units(self) -> int:
        """The size of the attention keys: bahdanau's hidden size, else the decoder's."""
        return self.attention_units if self.attention == "bahdanau" else self.units


@keras.saving.register_keras_serializable(package="seqkit")
class PaddingMask(keras.layers.Layer):
    """ids (batch, time) -> bool mask (batch, time), True where the id is not padding."""

    def call(self, ids):
        return keras.ops.not_equal(ids, 0)

    def compute_output_shape(self, input_shape):
        return input_shape


def decoder_layers(spec: DecoderSpec) -> dict[str, keras.layers.Layer]:
    """The decoder's layers by name: built once, shared by training and the step model."""
    backbone = BackboneSpec(cell=spec.cell, units=spec.units,
                            recurrent_dropout=spec.recurrent_dropout,
                            forget_bias=spec.forget_bias)
    layers = {
        "target_embedding": keras.layers.Embedding(spec.vocab_size, spec.embedding_dim,
                                                   name="target_embedding"),
        "decoder": rnn_layer(backbone, units=spec.units, return_sequences=True,
                             return_state=True, name="decoder"),
        "output_dropout": keras.layers.Dropout(spec.dropout, name="output_dropout"),
        "logits": keras.layers.Dense(spec.vocab_size, name="logits"),
    }
    if spec.attention == "bahdanau":
        layers["attention_query"] = keras.layers.Dense(spec.attention_units,
                                                       name="attention_query")
        layers["attention"] = keras.layers.AdditiveAttention(name="attention")
    elif spec.attention == "luong":
        layers["attention"] = keras.layers.Attention(name="attention")
    if spec.attention != "none":
        layers["attention_projection"] = keras.layers.Dense(spec.units,
                                                            name="attention_projection")
    return layers


def decoder_layer_names(spec: DecoderSpec) -> list[str]:
    names = ["target_embedding", "decoder", "output_dropout", "logits"]
    if spec.attention == "bahdanau":
        names.append("attention_query")
    if spec.attention != "none":
        names.append("attention")
    return names


def run_decoder(layers: dict, tokens, states: list, context: list):
    """Teacher-forced decoder over `tokens` (batch, tgt_time) from `states`.

    context is [memory (batch, mem_time, mem_units), attention keys (batch, mem_time,
    key_units), and optionally a bool mask (batch, mem_time)]; empty without attention.
    Returns (logits (batch, tgt_time, vocab), final states).
    """
    x = layers["target_embedding"](tokens)  # (batch, tgt_time, dim)
    y, *states = layers["decoder"](x, initial_state=states)  # (batch, tgt_time, units)
    if context:
        memory, keys, *mask = context
        query = layers["attention_query"](y) if "attention_query" in layers else y
        # context vectors: (batch, tgt_time, mem_units); masked memory steps get no weight
        attended = layers["attention"]([query, memory, keys],
                                       mask=[None, mask[0]] if mask else None)
        # The decoder output and the context, side by side, go through a linear projection
        # to the softmax. Luong et al.'s tanh there made training slower than no attention
        # (Tatoeba en->zh, 12k pairs, val loss after 3 epochs: tanh 3.41, none 3.29, the
        # bare concatenation 3.09, linear 2.95, and linear is the fastest of the three).
        y = keras.layers.concatenate([y, attended])
        for name in OPTIONAL_LAYERS:  # absent from models trained before it was added
            if name in layers:
                y = layers[name](y)
    y = layers["output_dropout"](y)
    return layers["logits"](y), states


def build_step_model(model: keras.Model, spec: DecoderSpec, memory_units: int = 0,
                     with_mask: bool = True) -> keras.Model:
    """One decoder step, from the trained model's named layers:
    [token (batch, 1), *states, *context] -> [logits (batch, 1, vocab), *new states].
    context (with attention) is [memory (batch, time, memory_units), keys, mask]; the
    mask is left out when with_mask is False."""
    layers = {name: model.get_layer(name) for name in decoder_layer_names(spec)}
    layers.update({layer.name: layer for layer in model.layers
                   if layer.name in OPTIONAL_LAYERS})
    token = keras.Input(shape=(1,), dtype="int32", name="token")
    states = [keras.Input(shape=(spec.units,), name=f"state_{i}")
              for i in range(spec.state_count)]
    context = []
    if spec.attention != "none":
        context = [keras.Input(shape=(None, memory_units), name="memory"),
                   keras.Input(shape=(None, spec.key_units), name="attention_keys")]
        if with_mask:
            context.append(keras.Input(shape=(None,), dtype="bool", name="memory_mask"))
    logits, new_states = run_decoder(layers, token, states, context)
    return keras.Model([token, *states, *context], [logits, *new_states], name="decoder_step")


def attention_weights(model: keras.Model, spec: DecoderSpec, tokens, states: list,
                      context: list):
    """The attention weights of a teacher-forced decoder pass over `tokens` (batch, time)
    from `states`, with the trained model's named layers, run eagerly (for pictures of a
    few inputs): (batch, time, mem_time). Row t is what the step that read token t (and
    predicted token t + 1) attended to. context is [memory, keys, mask], as in
    run_decoder (the mask may be left out)."""
    layers = {name: model.get_layer(name) for name in decoder_layer_names(spec)}
    memory, keys, *mask = context
    y, *_ = layers["decoder"](layers["target_embedding"](tokens), initial_state=list(states),
                              training=False)
    query = layers["attention_query"](y) if "attention_query" in layers else y
    _, weights = layers["attention"]([query, memory, keys],
                                     mask=[None, keras.ops.convert_to_tensor(mask[0])]
                                     if mask else None, return_attention_scores=True)
    return keras.ops.convert_to_numpy(weights)


def loss() -> keras.losses.Loss:
    # id 0 is padding: it counts neither in the loss nor in its mean
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
