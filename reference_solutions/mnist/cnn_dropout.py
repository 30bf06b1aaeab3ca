"""MNIST cnn_dropout: cnn2 with dropout (1,199,882 parameters, the same as cnn2).

Dropout 0.25 after the pooling and Dropout 0.5 after Dense 128; otherwise identical to cnn2
(SGD learning rate 0.01, momentum 0.9, batch 32). Dropout adds no parameters, yet it narrows
the train/held-out gap and gives the best test accuracy of the ladder: randomly silencing
units stops a large network from memorising the training set. This network is also the
starting point ("baseline") of the Fashion-MNIST exercise.
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
        name="cnn_dropout",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
