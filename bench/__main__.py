"""`make bench`: the model on LiteRT vs Keras, then the handlers (cold start, warm latency)."""

from bench import handlers, model

model.main()
handlers.main()
