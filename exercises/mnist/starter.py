"""MNIST handwritten digits: starter submission.

`grader init` writes this file as mnist_model.py by default. Try it on this machine with
    grader run mnist_model.py --exercise mnist
and hand it in with
    grader submit mnist_model.py --exercise mnist --wait

The contract, in short:
  * define `build_model()`; if it has parameters named `input_shape` and/or `num_classes`,
    the grader passes them (here (28, 28, 1) and 10);
  * return a `keras.Model` whose last layer is a softmax with `num_classes` units
    (labels are integers 0-9, the loss is sparse categorical cross-entropy);
  * compile it yourself to choose the optimizer, or leave it uncompiled to get the exercise's
    default (Adam, learning rate 0.001);
  * the input layout follows your model: an input of 784 values gets flattened images,
    an input of shape (28, 28, 1) gets the images themselves (pixels scaled to [0, 1]).

This file works as it is: it is the first rung of the course's ladder (fc64).
"""

from __future__ import annotations

import math

import keras
from keras import layers

# Optional: how to train. Leave it out to use the exercise defaults (10 epochs, batch 128).
# The grader checks the values against the exercise's limits (at most 40 epochs).
TRAINING = {"epochs": 10, "batch_size": 128}


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            # A dense network takes the 28x28 image flattened to 784 values.
            keras.Input(shape=(math.prod(input_shape),)),
            # TODO: make the network wider (e.g. 512 units) or deeper (a third Dense layer).
            #       How much does it help? Compare the parameter count with the gain.
            layers.Dense(64, activation="relu"),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )

    # TODO: try a convolutional network instead. It takes the image itself, e.g.:
    #   keras.Input(shape=input_shape),
    #   layers.Conv2D(32, (3, 3), activation="relu"),
    #   layers.MaxPooling2D((2, 2)),
    #   layers.Flatten(),
    #   layers.Dense(100, activation="relu"),
    #   layers.Dense(num_classes, activation="softmax"),
    # and is usually trained with keras.optimizers.SGD(learning_rate=0.01, momentum=0.9), batch 32.
    # Then add a second Conv2D, Dropout, or BatchNormalization and measure what each one does.

    # Optional: compile to pick the optimizer (otherwise Adam with learning rate 0.001 is used).
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
