"""MNIST baseline, fc64: the first rung of the course's ladder (55,050 parameters).

Two Dense 64 relu layers on the flattened 784-pixel image and a Dense 10 softmax, trained
with Adam at batch 128. It already reaches about 97% on MNIST and is the yardstick every
other model is compared against; it teaches the basic Keras workflow (input, dense layers,
softmax output, sparse categorical cross-entropy) before anything clever.
"""

from __future__ import annotations

import math

import keras
from keras import layers

TRAINING = {"epochs": 10, "batch_size": 128}


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(shape=(math.prod(input_shape),)),  # dense nets take the flattened 784 pixels
            layers.Dense(64, activation="relu"),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="fc64",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
