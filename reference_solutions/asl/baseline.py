"""ASL baseline: the course's first model, a dense network on flattened pixels (677,401 parameters).

Dense 512 relu, Dense 512 relu, Dense 25 softmax on the 784 flattened pixels (25 output units =
the raw labels 0-24, with 9 for J unused), Adam, batch 32, 20 epochs. Training accuracy climbs
to nearly 100% while accuracy on the test signers lags far behind: the network memorises pixel
positions of the training photos instead of learning hand shapes. It is kept as the baseline
precisely because it shows overfitting, which the CNN and augmentation fix.
"""

from __future__ import annotations

import math

import keras
from keras import layers

TRAINING = {"epochs": 20, "batch_size": 32}


def build_model(input_shape=(28, 28, 1), num_classes=25):
    model = keras.Sequential(
        [
            keras.Input(shape=(math.prod(input_shape),)),  # dense nets take the flattened 784 pixels
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="asl_dense",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
