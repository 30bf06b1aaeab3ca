"""Fashion-MNIST baseline: the MNIST cnn_dropout network with the dataset swapped (1,199,882 parameters).

Conv2D 32 3x3 relu, Conv2D 64 3x3 relu, MaxPool 2x2, Dropout 0.25, Flatten, Dense 128 relu,
Dropout 0.5, Dense 10 softmax; SGD (learning rate 0.01, momentum 0.9), batch 32. It is the
course's starting point for this exercise, unchanged on purpose: the network that reaches about
99% on digits lands around 91% on clothing, and participants must beat it by tuning width,
depth, dropout, optimizer, learning rate, padding, pooling, batch norm and epochs.
"""

from __future__ import annotations

import keras
from keras import layers

TRAINING = {"epochs": 15, "batch_size": 32}


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="baseline_cnn_dropout",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
