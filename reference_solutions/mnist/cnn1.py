"""MNIST cnn1: the first convolutional network (542,230 parameters).

One Conv2D 32 3x3 relu, MaxPool 2x2, Flatten, Dense 100 relu, Dense 10 softmax, on the
28x28x1 image, trained with SGD (learning rate 0.01, momentum 0.9) at batch 32. With fewer
parameters than fc512 it beats every dense model: convolutions share weights across the
image and detect local strokes wherever they are, which is what helps on pictures.
"""

from __future__ import annotations

import keras
from keras import layers

TRAINING = {"epochs": 10, "batch_size": 32}


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(100, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn1",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
