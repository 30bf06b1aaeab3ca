"""MNIST cnn2: two stacked convolutions (1,199,882 parameters).

Conv2D 32 3x3 relu, Conv2D 64 3x3 relu, MaxPool 2x2, Flatten, Dense 128 relu, Dense 10
softmax; SGD (learning rate 0.01, momentum 0.9), batch 32. The second convolution builds
features out of features (strokes into parts of digits) and lifts test accuracy to about 99%,
but the large Dense layer fits the training set almost perfectly: watch the gap between
training and held-out accuracy, which the next model (cnn_dropout) closes.
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
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn2",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
