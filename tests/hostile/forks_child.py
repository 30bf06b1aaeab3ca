"""Hostile submission: leaves a detached grandchild (new session, ignores SIGTERM/SIGHUP) behind."""

import json
import os
import sys
import time
from pathlib import Path

import keras

PROBE: dict = {}  # the test adds {"marker": "<unique string>"} to find the child in /proc

TRAINING = {"epochs": 1, "batch_size": 128}

SLEEPER = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
open("child_started", "w").write(str(os.getpid()))
time.sleep(3600)
"""


def _detach() -> bool:
    pid = os.fork()
    if pid == 0:  # child: new session, then fork again so the grandchild has no parent to wait for it
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.execv(sys.executable, [sys.executable, "-c", SLEEPER, PROBE.get("marker", "grader-hostile-child")])
    os.waitpid(pid, 0)
    for _ in range(200):  # make sure the grandchild is really running before the job goes on
        if Path("child_started").exists():
            return True
        time.sleep(0.05)
    return False


def build_model(num_classes):
    print("GRADER-FOUND " + json.dumps({"child_started": _detach()}), flush=True)
    return keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(num_classes, activation="softmax")])
