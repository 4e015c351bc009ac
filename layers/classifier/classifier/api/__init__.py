"""The HTTP API side: what the predict, batch and predictions functions run.

- :mod:`.resolver`: the Powertools REST resolver every API function uses, with the one error mapping;
- :mod:`.callers`: who is calling (the API key id) and its role (client or operator);
- :mod:`.bodies`: the predict routes' request bodies and parameters;
- :mod:`.inference`: decoded images through the model, one call per request;
- :mod:`.model_provider`: which model serves, hot-swapped from the registry without a redeploy;
- :mod:`.predict`: the predict and batch use cases (classify, record, answer);
- :mod:`.records`: prediction records in DynamoDB.

Serving code: never imports :mod:`classifier.training` (Keras, TensorFlow). It reads the registry
pointer through :mod:`classifier.mlops.registry`; nothing in :mod:`classifier.mlops` imports it back.
Submodules are imported where used, so importing this package costs nothing.
"""

__all__ = ["bodies", "callers", "inference", "model_provider", "predict", "records", "resolver"]
