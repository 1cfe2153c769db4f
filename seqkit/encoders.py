"""Image encoders: an image (batch, size, size, 3), RGB values 0-255, becomes a feature map
(batch, positions, channels) that a decoder pools or attends over.

  cnn        a small CNN trained from scratch: conv-batchnorm-relu-maxpool blocks
  features   precomputed features: the input already is the map (or one vector per image)
  NAME       a keras.applications backbone without its classifier (mobilenet_v2,
             efficientnet_b0, resnet50, ...), with random, ImageNet or local weights;
             each gets the input scaling it was trained with, inside the model
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

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
ENCODERS = ("cnn", "features", *APPLICATIONS)
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
