"""Training: the Keras network (:mod:`.network`), the training loop (:mod:`.trainer`), channel
pruning (:mod:`.pruning`), export to LiteRT with the model card (:mod:`.export`) and the command line
(:mod:`.cli`, ``python -m classifier``).

Needs Keras (and TensorFlow for export). Serving never imports it: the predict and batch functions
run the exported ``.tflite`` through :mod:`classifier.litert`, and a packaging test checks that
their import path holds neither Keras nor TensorFlow. Only :mod:`classifier.mlops.retrain` (the
retrain container image) and the command line import it.
"""

__all__ = ["cli", "export", "network", "pruning", "trainer"]
