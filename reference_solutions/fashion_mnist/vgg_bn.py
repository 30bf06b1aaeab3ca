"""Fashion-MNIST vgg_bn: a small padded VGG-style CNN with batch norm, dropout and Adam (872,426 parameters).

Two blocks of two 3x3 convolutions (32 then 64 filters, padding="same") each followed by batch
norm and relu, then 2x2 max pooling and Dropout 0.25; a Dense 256 layer with batch norm and
Dropout 0.5; Adam (learning rate 0.001), batch 64, 30 epochs. Why each change over the baseline:
"same" padding keeps the 28x28 borders where collars, sleeves and soles are; stacking two
convolutions per block doubles the receptive field per pooling step, so texture and shape (shirt
vs T-shirt vs pullover) are seen at two scales; batch norm lets Adam train the deeper stack
quickly and stably (momentum 0.9, so its inference statistics keep up with the weights even in a
short run); dropout after every block keeps the larger network from memorising the training set.
With fewer parameters than the baseline (the second pooling shrinks the Dense layer's input to
7x7x64), networks of this shape usually reach about 93% on the test split, a clear margin over
the baseline.
"""

from __future__ import annotations

import keras
from keras import layers

TRAINING = {"epochs": 30, "batch_size": 64}


def _conv_bn_relu(filters):
    return [
        layers.Conv2D(filters, (3, 3), padding="same"),
        layers.BatchNormalization(momentum=0.9),
        layers.Activation("relu"),
    ]


def build_model(input_shape=(28, 28, 1), num_classes=10):
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            *_conv_bn_relu(32),
            *_conv_bn_relu(32),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            *_conv_bn_relu(64),
            *_conv_bn_relu(64),
            layers.MaxPooling2D((2, 2)),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256),
            layers.BatchNormalization(momentum=0.9),
            layers.Activation("relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="vgg_bn",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
