"""The MLOps side: the model registry, retraining jobs and the training data they use.

- :mod:`.registry`: model versions and the current-version pointer (promotion, rollback);
- :mod:`.models`: the rules the models routes apply on top of the registry (the shipped baseline's
  entry, the ``current`` flag, the gate's rejection and ``force``, cards from S3);
- :mod:`.jobs`: retraining jobs and the one-job-at-a-time lock;
- :mod:`.retrain`: one retraining job advanced within an invocation's time (needs Keras: only the
  retrain container image imports it);
- :mod:`.training_data`: labelled images and zip uploads, content addressed in S3;
- :mod:`.bodies`: the request bodies of the MLOps routes.

Builds on the core and :mod:`classifier.aws`; never imports :mod:`classifier.api`. Submodules are
imported where used, so importing this package costs nothing (and never imports Keras).
"""

__all__ = ["bodies", "jobs", "models", "registry", "retrain", "training_data"]
