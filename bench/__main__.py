"""`make bench`: the model on LiteRT vs Keras, then the handlers (cold start, warm latency), then a
short load test of the local API (`make loadtest` with fewer users and seconds)."""

import sys

from bench import handlers, loadtest, model

model.main()
handlers.main()
sys.exit(loadtest.main(["--users", "16", "--seconds", "10", "--requests", "2000"]))
