"""Hostile submission: phones home to a listener on 127.0.0.1 (the test's), then trains normally."""

import json
import socket

import keras

PROBE: dict = {}  # the test adds {"port": N}

TRAINING = {"epochs": 1, "batch_size": 128}


def _phone_home() -> dict:
    try:
        with socket.create_connection(("127.0.0.1", PROBE.get("port", 9)), timeout=5) as conn:
            conn.sendall(b"held-out labels, please")
            return {"connected": True, "error": None}
    except OSError as exc:
        return {"connected": False, "error": f"{type(exc).__name__}: {exc}"}


def build_model(num_classes):
    print("GRADER-FOUND " + json.dumps(_phone_home()), flush=True)
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
