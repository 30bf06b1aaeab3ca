"""ASL cnn: a three-block convolutional network with batch norm and dropout (264,562 parameters).

Conv2D 75, 50 and 25 filters (3x3, padding "same", relu), each followed by batch norm and 2x2
max pooling (dropout 0.2 after the second), then Dense 512 relu, Dropout 0.3 and Dense 25
softmax; Adam, batch 32, 20 epochs. Batch norm keeps Keras' default momentum (0.99), as in the
course: its inference statistics settle after a few hundred steps, which is why the smoke profile
trains ASL for 12 epochs (docs/validation.md). With well under half the dense
baseline's parameters it generalises far better to the test signers, because convolutions look
for local hand-shape features wherever they appear instead of memorising exact pixel positions.
"""

from __future__ import annotations

import keras
from keras import layers

TRAINING = {"epochs": 20, "batch_size": 32}


def build_model(input_shape=(28, 28, 1), num_classes=25):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(75, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2), strides=2, padding="same"),
            layers.Conv2D(50, (3, 3), padding="same", activation="relu"),
            layers.Dropout(0.2),
            layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2), strides=2, padding="same"),
            layers.Conv2D(25, (3, 3), padding="same", activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling2D((2, 2), strides=2, padding="same"),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="asl_cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
