"""Hostile submission: prints megabytes to stdout and stderr at import, then trains normally."""

import sys

import keras

TRAINING = {"epochs": 1, "batch_size": 128}
LINE = "all work and no play makes jack a dull boy " * 20 + "\n"

for _ in range(8 * 1024 * 1024 // len(LINE)):  # 8 MB each
    sys.stdout.write(LINE)
    sys.stderr.write(LINE)
sys.stdout.flush()


def build_model(num_classes):
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
