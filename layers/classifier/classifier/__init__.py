"""CIFAR-10 classifier: the package every function of the service shares (the Lambda layer).

Layers, each importing only the ones before it (``tests/unit/test_layering.py`` checks it)::

    core            labels, limits, errors, settings, storage, clock, cards, preprocessing,
                    payloads, litert, datasets, evaluation, gate, coldstart
    training        the Keras network, training, pruning, export, CLI (Keras/TensorFlow)
    aws             botocore clients, the DynamoDB table, the number codec
    mlops           registry, models rules, retraining jobs, retraining, training data
    api             resolver, request bodies, inference, model provider, predict, records
    functions/      the Lambda handlers (outside the package)

``training`` stands beside ``aws``: it needs only the core, and only ``mlops.retrain`` and the
command line import it. The predict and batch functions never do (no TensorFlow in serving).
"""
