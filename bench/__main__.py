"""`make bench`: the model on LiteRT vs Keras, then the accuracy/latency frontier of every kept
model (bench.frontier), then the handlers (cold start, warm latency), then a batch job end to end
with 1 and 2 workers and its cost per million images (bench.jobs), then a short load test of the
local API (`make loadtest` with fewer users and seconds)."""

import sys

from bench import frontier, handlers, jobs, loadtest, model

model.main()
frontier.main([])
handlers.main()
jobs.main([])
sys.exit(loadtest.main(["--users", "16", "--seconds", "10", "--requests", "2000"]))
