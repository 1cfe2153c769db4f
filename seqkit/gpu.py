"""What training on a GPU changes: `--mixed-precision` (`precision`, and `float32_copy`,
the model that is saved) and what keeps a recipe off the fused cuDNN kernels
(`kernel_notes`). Several devices and machines are seqkit.distribute's."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def precision(name: str):
    """Layers made inside compute in float16 or bfloat16 (`name`) with float32 weights;
    "off" changes nothing. With float16, Keras's compile wraps the optimizer in a
    LossScaleOptimizer, so that small gradients do not underflow."""
    import keras

    if name == "off":
        yield
        return
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(f"mixed_{name}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_copy(model):
    """`model` with every layer computing in float32 and the same weights (a mixed
    precision model's weights are float32 already): what is saved, scored and exported,
    so that inference (Keras or ONNX) does not depend on the GPU it was trained on."""
    config = _float32(model.get_config())
    copy = type(model).from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _float32(node):
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and \
                str(node.get("config", {}).get("name", "")).startswith("mixed_"):
            return {**node, "config": {**node["config"], "name": "float32"}}
        return {k: _float32(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_float32(v) for v in node]
    return node


def kernel_notes(config) -> list[str]:
    """What in a recipe keeps Keras off the fused cuDNN recurrent kernels on a GPU (it uses
    them for LSTM and GRU with tanh/sigmoid, no recurrent dropout, no unrolling and
    right-padded masks; seqkit's recipes fix all but the cell and recurrent_dropout)."""
    notes = []
    if getattr(config, "cell", None) == "simple_rnn":
        notes.append("cell = simple_rnn has no fused cuDNN kernel: on a GPU it runs step by "
                     "step (gru and lstm run as one cuDNN call)")
    rate = getattr(config, "recurrent_dropout", 0.0)
    if rate > 0:
        notes.append(f"recurrent_dropout = {rate:g} keeps Keras off the fused cuDNN kernel, "
                     "several times slower on a GPU; recurrent_dropout = 0 (with dropout) "
                     "uses it")
    return notes
