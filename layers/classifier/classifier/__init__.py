"""CIFAR-10 classifier: preprocessing contract, datasets, model, training, export, runtime.

Serving imports only ``labels``, ``limits``, ``errors``, ``preprocessing``, ``runtime`` and the
modules built on them (numpy, Pillow, LiteRT). ``model``, ``training`` and ``export`` need Keras
(and TensorFlow for export) and are imported only by training code.
"""
