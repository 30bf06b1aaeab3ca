"""ASL alphabet (Sign-Language MNIST): starter submission.

`grader init` writes this file as asl_model.py by default. Try it on this machine with
    grader run asl_model.py --exercise asl
and hand it in with
    grader submit asl_model.py --exercise asl --wait

The contract, in short:
  * define `build_model()`; if it has parameters named `input_shape` and/or `num_classes`,
    the grader passes them (here (28, 28, 1) and 25);
  * labels are the raw values 0-24 for the letters A-Y; 9 (J) never occurs because J and Z
    need motion. So the last layer is a softmax with `num_classes` = 25 units, as in the course
    (24 units with the labels remapped, or 26 for A-Z, are accepted too);
  * compile it yourself to choose the optimizer, or leave it uncompiled to get the exercise's
    default (Adam, learning rate 0.001); the loss is sparse categorical cross-entropy;
  * the input layout follows your model: an input of 784 values gets flattened images,
    an input of shape (28, 28, 1) gets the images themselves (pixels scaled to [0, 1]);
  * optionally define `augment(image, label)` to transform training images (see below).

This file works as it is: it is the course's first model, a dense network. Expect training
accuracy near 100% and a much lower score on the test signers: that gap is overfitting.
"""

from __future__ import annotations

import math

import keras
from keras import layers

# Optional: how to train. Leave it out to use the exercise defaults (10 epochs, batch 32).
TRAINING = {"epochs": 10, "batch_size": 32}


def build_model(input_shape=(28, 28, 1), num_classes=25):
    model = keras.Sequential(
        [
            # A dense network takes the 28x28 image flattened to 784 values.
            keras.Input(shape=(math.prod(input_shape),)),
            layers.Dense(512, activation="relu"),
            layers.Dense(512, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )
    # TODO: replace the dense layers with a convolutional network that takes the image, e.g.
    #   keras.Input(shape=input_shape),
    #   layers.Conv2D(75, (3, 3), padding="same", activation="relu"),
    #   layers.BatchNormalization(),
    #   layers.MaxPooling2D((2, 2)),
    #   ... more Conv2D / BatchNormalization / MaxPooling2D / Dropout blocks ...
    #   layers.Flatten(),
    #   layers.Dense(512, activation="relu"),
    #   layers.Dropout(0.3),
    #   layers.Dense(num_classes, activation="softmax"),

    # Optional: compile to pick the optimizer (otherwise Adam with learning rate 0.001 is used).
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# TODO (after the CNN): data augmentation. Uncomment to apply small random rotations, zooms and
# shifts to every training image (the test images are never augmented). `image` is a float32
# 28x28x1 tensor in [0, 1]; return the new image and the label unchanged. Use TensorFlow/Keras
# ops only. Do NOT flip: a mirrored hand sign can be a different letter.
#
# _ROTATE = layers.RandomRotation(10 / 360, fill_mode="nearest", seed=1)  # up to 10 degrees
# _ZOOM = layers.RandomZoom(0.1, fill_mode="nearest", seed=2)  # up to 10%
# _SHIFT = layers.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=3)  # up to 10% each way
#
#
# def augment(image, label):
#     image = _ROTATE(image, training=True)
#     image = _ZOOM(image, training=True)
#     image = _SHIFT(image, training=True)
#     return image, label
