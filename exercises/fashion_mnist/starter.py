"""Fashion-MNIST clothing: starter submission.

`grader init` writes this file as fashion_mnist_model.py by default. Try it on this machine with
    grader run fashion_mnist_model.py --exercise fashion_mnist
and hand it in with
    grader submit fashion_mnist_model.py --exercise fashion_mnist --wait

The contract, in short:
  * define `build_model()`; if it has parameters named `input_shape` and/or `num_classes`,
    the grader passes them (here (28, 28, 1) and 10);
  * return a `keras.Model` whose last layer is a softmax with `num_classes` units
    (labels are integers 0-9, the loss is sparse categorical cross-entropy);
  * compile it yourself to choose the optimizer, or leave it uncompiled to get the exercise's
    default (Adam, learning rate 0.001);
  * the model gets the 28x28x1 images with pixels scaled to [0, 1] (a model whose input is
    784 values long gets them flattened instead);
  * at most 3,000,000 parameters and 40 epochs.

This file works as it is: it is the course's baseline, the MNIST cnn_dropout network with the
dataset swapped. Your goal is to beat it by a measurable margin on the held-out test split.
"""

from __future__ import annotations

import keras
from keras import layers

# Optional: how to train. Leave it out to use the exercise defaults (10 epochs, batch 32).
# TODO: more epochs help a regularised network; a larger batch trains faster per epoch.
TRAINING = {"epochs": 15, "batch_size": 32}


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            # TODO: more filters? padding="same" to keep the borders? BatchNormalization after a conv?
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            # TODO: tune the dropout rates; try a second block of convolutions + pooling.
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )

    # TODO: try other optimizers and learning rates, e.g.
    #   keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)
    #   keras.optimizers.Adam(learning_rate=1e-3)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
