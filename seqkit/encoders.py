"""The caption model's Keras side: image encoders, the captioner (the decoder of
seqkit.seq2seq, started from the image) and the two assembled; the inference models
around a trained one. (seqkit.tasks.caption holds the task; seqkit.images its data.)

An image encoder: an image (batch, size, size, 3), RGB values 0-255, becomes a feature map
(batch, positions, channels) that the decoder pools or attends over.

  cnn        a small CNN trained from scratch: conv-batchnorm-relu-maxpool blocks
  features   precomputed features: the input already is the map (or one vector per image)
  NAME       a keras.applications backbone without its classifier (mobilenet_v2,
             efficientnet_b0, resnet50, ...), with random, ImageNet or local weights;
             each gets the input scaling it was trained with, inside the model
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras
import numpy as np
from keras import ops

from seqkit import choices, decoding, seq2seq

# name -> (keras.applications class, the input scaling it expects)
APPLICATIONS = {
    "mobilenet_v2": ("MobileNetV2", "tf"),
    "mobilenet_v3_small": ("MobileNetV3Small", "raw"),
    "efficientnet_b0": ("EfficientNetB0", "raw"),
    "efficientnet_v2_b0": ("EfficientNetV2B0", "raw"),
    "resnet50": ("ResNet50", "caffe"),
    "densenet121": ("DenseNet121", "torch"),
    "vgg16": ("VGG16", "caffe"),
}
ENCODERS = choices.ENCODERS
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="seqkit")
class ImageScaling(keras.layers.Layer):
    """RGB 0-255 -> a backbone's input range: unit [0, 1]; tf [-1, 1]; torch (ImageNet mean
    and std); caffe (BGR minus the ImageNet mean); raw (unchanged: the model scales)."""

    MODES = ("unit", "tf", "torch", "caffe", "raw")

    def __init__(self, mode: str = "unit", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x / 255.0 - ops.array(IMAGENET_MEAN)) / ops.array(IMAGENET_STD)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.array(CAFFE_MEAN_BGR)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="seqkit")
class RowGather(keras.layers.Layer):
    """[values (rows, ...), index (picks,)] -> values[index] (picks, ...): the feature map
    of each caption's image, when a batch carries each image once and its captions
    several times."""

    def call(self, inputs):
        values, index = inputs
        return ops.take(values, ops.cast(index, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        values, index = input_shape
        return (index[0], *values[1:])


def build_encoder(config, feature_shape: Sequence[int] | None = None) -> keras.Model:
    """The encoder named by config.encoder, as a model named "encoder":
    image (batch, size, size, 3) -> feature map (batch, positions, channels).
    For "features" the input is the (positions, dim) feature map itself."""
    if config.encoder == "features":
        features = keras.Input(shape=tuple(feature_shape), name="image")
        return keras.Model(features, keras.layers.Identity(name="features_in")(features),
                           name="encoder")
    size = config.image_size
    image = keras.Input(shape=(size, size, 3), name="image")
    if config.encoder == "cnn":
        x = ImageScaling("unit", name="image_scaling")(image)
        for i in range(config.cnn_blocks):
            x = keras.layers.Conv2D(config.cnn_filters * 2 ** i, 3, padding="same",
                                    use_bias=False, name=f"conv_{i}")(x)
            x = keras.layers.BatchNormalization(name=f"conv_norm_{i}")(x)
            x = keras.layers.Activation("relu", name=f"conv_relu_{i}")(x)
            x = keras.layers.MaxPooling2D(2, name=f"conv_pool_{i}")(x)  # halves h and w
    else:
        class_name, mode = APPLICATIONS[config.encoder]
        x = ImageScaling(mode, name="image_scaling")(image)
        backbone = getattr(keras.applications, class_name)(
            include_top=False, weights=config.encoder_weights or None,
            input_shape=(size, size, 3))
        backbone.trainable = config.fine_tune
        x = backbone(x)
    height, width, channels = x.shape[1:]
    grid = keras.layers.Reshape((height * width, channels), name="feature_map")(x)
    return keras.Model(image, grid, name="encoder")  # (batch, positions, channels)


def encode_images(encoder: keras.Model, inputs: np.ndarray, batch_size: int = 64
                  ) -> np.ndarray:
    """The feature maps of a frozen encoder, computed once: (n, positions, channels)."""
    out = [np.asarray(encoder(inputs[i:i + batch_size].astype(np.float32), training=False))
           for i in range(0, len(inputs), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, *encoder.output.shape[1:]))


# The captioner, and the model it makes with an encoder -----------------------------------------
def build_captioner(spec: seq2seq.DecoderSpec, map_shape: Sequence[int], pooling: str,
                    dropout: float = 0.0) -> keras.Model:
    """{features (batch, positions, channels), tokens (batch, time)} -> next-token logits
    (batch, time, vocab). The pooled map sets the decoder's start state(s)."""
    features = keras.Input(shape=tuple(map_shape), name="features")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    states, context = start_states(features, spec, pooling, dropout)
    logits, _ = seq2seq.run_decoder(seq2seq.decoder_layers(spec), tokens, states, context)
    return keras.Model({"features": features, "tokens": tokens}, logits, name="captioner")


def start_states(features, spec: seq2seq.DecoderSpec, pooling: str, dropout: float = 0.0,
                 layers=None):
    """Decoder start states from the pooled map, and the attention context (the map and
    its keys). `layers` takes trained layers by name; without it they are made."""
    def get(name, make):
        return layers.get_layer(name) if layers is not None else make()

    pool = keras.layers.Flatten if pooling == "flatten" else keras.layers.GlobalAveragePooling1D
    pooled = get("image_pool", lambda: pool(name="image_pool"))(features)  # (batch, dim)
    if layers is None and dropout > 0:
        pooled = keras.layers.Dropout(dropout, name="image_dropout")(pooled)
    states = [get(f"init_state_{i}", lambda i=i: keras.layers.Dense(
        spec.units, activation="tanh", name=f"init_state_{i}"))(pooled)
        for i in range(spec.state_count)]  # each (batch, units)
    if spec.attention == "none":
        return states, []
    keys = get("attention_key", lambda: keras.layers.Dense(
        spec.key_units, use_bias=False, name="attention_key"))(features)
    return states, [features, keys]  # (batch, positions, channels), (batch, positions, keys)


def assemble(encoder: keras.Model | None, captioner: keras.Model,
             map_shape: Sequence[int] = (), words: int = 0) -> keras.Model:
    """{image (images, size, size, 3), image_index (captions,), tokens (captions, time)}
    -> logits (captions, time, vocab): each image of a batch is encoded once and its map
    goes to each of its captions (image_index: the row of each caption's image). Without
    an encoder the input is the map itself, "features" (images, *map_shape).

    words > 0 (a vocabulary size) adds the word head for training: the outputs become
    {"next": those logits, "words": (captions, words) logits of each word being in some
    caption of the image}, from the mean of the map, so the encoder is taught what is in
    the picture directly and not only through the decoder."""
    name = "image" if encoder is not None else "features"
    image = keras.Input(shape=encoder.input.shape[1:] if encoder is not None
                        else tuple(map_shape), name=name)
    index = keras.Input(shape=(), dtype="int32", name="image_index")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    features = encoder(image) if encoder is not None else image  # (images, positions, ch)
    rows = RowGather(name="image_rows")([features, index])  # (captions, positions, ch)
    logits = captioner({"features": rows, "tokens": tokens})
    if words:
        pooled = keras.layers.GlobalAveragePooling1D(name="word_pool")(features)
        found = keras.layers.Dense(words, name="word_head")(pooled)  # (images, words)
        logits = {"next": logits, "words": RowGather(name="word_rows")([found, index])}
    return keras.Model({name: image, "image_index": index, "tokens": tokens}, logits,
                       name="caption")


def keras_captioner(model: keras.Model, spec: seq2seq.DecoderSpec, pooling: str,
                    bos: int, eos: int, banned: Sequence[int], alpha: float = 0.6
                    ) -> decoding.Captioner:
    """The inference models around a trained caption model (its layers "encoder" and
    "captioner"): image (or feature map) -> the decoder's start states and context, and one
    decoder step; the NumPy search runs them. The start model is kept as `.start_model`
    (for export)."""
    import tensorflow as tf

    encoder = model.get_layer("encoder")
    trained = model.get_layer("captioner")
    map_shape = encoder.output.shape[1:]
    features = keras.Input(shape=map_shape, name="features")
    states, context = start_states(features, spec, pooling, layers=trained)
    start = keras.Model(features, [*states, *context], name="start")
    images = keras.Input(shape=encoder.input.shape[1:], name="images")
    start_model = keras.Model(images, start(encoder(images)), name="encode_and_start")
    decoder = decoding.StepDecoder(
        seq2seq.build_step_model(trained, spec, map_shape[-1], with_mask=False),
        spec.state_count, banned=banned)
    captioner = decoding.Captioner(
        tf.function(lambda x: start_model(x, training=False), reduce_retracing=True),
        decoder, bos, eos, alpha)
    captioner.start_model = start_model
    return captioner


def export_captioner(captioner: decoding.Captioner, bos: int, directory) -> Path:
    """A Keras captioner's graphs (seqkit.graphs): encoder.onnx (image or features -> the
    decoder's start states and context) and decoder.onnx (one step), for predict and
    evaluate without TensorFlow."""
    from seqkit import graphs

    directory = Path(directory)
    sample = np.zeros((1, *captioner.start_model.input.shape[1:]), dtype=np.float32)
    graphs.export(captioner.start_model, directory / graphs.ENCODER_FILE, sample)
    token = np.array([[bos]], dtype=np.int32)
    return graphs.export(captioner.decoder.step_model, directory / graphs.DECODER_FILE,
                         [token, *captioner.start(sample)])


def word_log_odds(pre, data) -> np.ndarray:
    """Log-odds of each word being in some caption of a training image: the word head's
    starting bias. From zero (even odds) the bias of a rare word would take thousands of
    steps to come down, and the head would learn word frequencies, not pictures."""
    counts = np.zeros(len(pre.captions.vocab))
    for captions in data.captions:
        counts[list({i for c in captions for i in pre.encode(c)[1]})] += 1
    share = np.clip(counts / max(len(data.captions), 1), 0.5 / max(len(data.captions), 1),
                    1 - 0.5 / max(len(data.captions), 1))
    return np.log(share / (1 - share)).astype(np.float32)
