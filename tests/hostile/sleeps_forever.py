"""Hostile submission: ignores SIGTERM and sleeps forever as soon as it is imported."""

import signal
import time

import keras

signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("GRADER-FOUND {\"sleeping\": true}", flush=True)
while True:
    time.sleep(1)


def build_model(num_classes):  # never reached, but a valid submission all the same
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
