# The README's commands. Every target sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CIFAR10_DATA ?= $(abspath ../shared/data)
export CIFAR10_DATA
export PYTHONPATH := $(CURDIR)/layers/classifier:$(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 2

RUN_DIR ?= .runs/$(shell date -u +%Y%m%dT%H%M%S)
TRAIN_DATA ?= $(CIFAR10_DATA)/cifar10-train.zip
TEST_DATA ?= $(CIFAR10_DATA)/cifar10-test.zip
MODEL ?= layers/classifier/classifier/baseline/model.tflite

.PHONY: setup test lint screenshots train export evaluate bench frontier gpu-kit loadtest serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt requirements/train.txt layers/classifier/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@

test: setup lint browser
	CONSOLE_BROWSER="$${CONSOLE_BROWSER:-$$(cat build/browser-path 2>/dev/null)}" $(BIN)/pytest $(PYTEST_ARGS)

## browser: a Chromium for the console's browser tests (Playwright's download, else apt-get as root);
## `make browser` says what it did and fails with the reason when neither works
.PHONY: browser
browser: setup
	@$(BIN)/python -m infra.browser

## screenshots: the console's browser tests, then the README's screenshots into docs/screenshots
screenshots: setup browser
	CONSOLE_BROWSER="$${CONSOLE_BROWSER:-$$(cat build/browser-path 2>/dev/null)}" $(BIN)/pytest tests/integration/test_console.py -q
	cp build/screenshots/classify-phone.png build/screenshots/classify-desktop.png \
	   build/screenshots/retrain-phone.png build/screenshots/retrain-desktop.png docs/screenshots/

# --- Static checks, run first by `make test`; silent when clean.
#   ruff:    lint and format check of the whole code base ([tool.ruff] in pyproject.toml);
#            `make lint RUFF_FORMAT=0` skips the format check. `ruff format .` fixes it.
#   bandit:  security lint of the Python that ships (the layer's package and the functions);
#            false positives are marked at their line with `# nosec BXXX  # reason`.
#   checkov: IaC security scan of template.yaml (CloudFormation, SAM resources included); each
#            skipped check has its reason in the resource's Metadata.checkov.skip.
RUFF_FORMAT ?= 1
CHECKOV_VENV := .venv-checkov

## lint: ruff, bandit and checkov
lint: setup checkov
	$(BIN)/ruff check --quiet .
ifeq ($(RUFF_FORMAT),1)
	$(BIN)/ruff format --check --quiet .
endif
	$(BIN)/bandit --quiet --recursive layers/classifier/classifier functions
	@echo "checkov -f template.yaml"; out=$$($(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download \
		--framework cloudformation -f template.yaml 2>&1) || { echo "$$out"; exit 1; }

.PHONY: checkov
## checkov: checkov in .venv-checkov (its pins conflict with the project's: boto3, ...)
checkov: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet -r requirements/checkov.txt
	touch $@

## train: fit a model from scratch (or FLAGS="--init model.keras" to fine-tune); resumes from RUN_DIR
train: setup
	$(BIN)/python -m classifier train --data $(TRAIN_DATA) --out $(RUN_DIR) $(FLAGS)
	$(BIN)/python -m classifier export --model $(RUN_DIR)/model.keras --out $(RUN_DIR) --test-data $(TEST_DATA)

## evaluate: print the card's figures for MODEL (.tflite or .keras) on TEST_DATA
evaluate: setup
	$(BIN)/python -m classifier evaluate --model $(MODEL) --data $(TEST_DATA) $(FLAGS)

bench: setup
	$(BIN)/python -m bench $(FLAGS)

## frontier: accuracy, ECE, latency, size and agreement of every kept model; FLAGS=--candidates also
## times untrained candidate architectures (float32, dynamic-range, full int8) on one thread
frontier: setup
	$(BIN)/python -m bench.frontier $(FLAGS)

## gpu-kit: what a training run on the GPU machine carries beside the tree (docs/model.md, "Training
## on a GPU machine"): the CIFAR-10 zips packed small (.devdata) and the wheels of Keras and of what it
## needs there that the machine lacks (.whl); then the size that will travel, against the device tool's cap
GPU_WHEELS = $(shell grep -h '^keras==' requirements/train.txt) $(shell $(BIN)/pip freeze | grep -i -E '^(namex|optree)==')
gpu-kit: setup
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)
	$(BIN)/python -m infra.devdata --carry .whl $(FLAGS)

## loadtest: locust, headless, against a local API it starts on loopback (the real template, the shipped
## model), bounded by USERS, SECONDS and REQUESTS; a fresh client key every 5 predictions, so the
## per-key buckets do not shape the figures. Prints requests/s, p50/p95/p99, errors by status, and
## fails on any answer that is not its own request's (image_sha256), 5xx or unanswered request.
USERS ?= 32
SECONDS ?= 30
REQUESTS ?= 5000
loadtest: setup
	$(BIN)/python -m bench.loadtest --users $(USERS) --seconds $(SECONDS) --requests $(REQUESTS) $(FLAGS)

## serve: the local API on http://127.0.0.1:$${PORT:-3000} (API keys, usage plans, moto S3 and DynamoDB)
serve: setup
	$(BIN)/python -m infra.local_api $(FLAGS)

clean:
	rm -rf .aws-sam build .pytest_cache

# --- Build, validate, invoke, deploy (SAM). The SAM CLI and cfn-lint live in their own virtual
# environment: their pins conflict with the project's.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY ?= 0
FUNCTION ?= PredictFunction
EVENT ?= shared/events/predict-raw.json

.PHONY: sam build validate invoke deploy api-key

## sam: the SAM CLI (and cfn-lint) in .venv-sam
sam: $(SAM_VENV)/.installed

$(SAM_VENV)/.installed: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/pip install --quiet -r requirements/sam.txt
	touch $@

# The build tests run sam and cfn-lint.
test: sam

# Container-image functions (PackageType: Image) need a running Docker to build; without one they are left out.
IMAGE_FUNCTIONS = $(shell $(BIN)/python -c 'from infra.template import Template; 	print(*(i for i, r in Template("template.yaml").resources.items() if r["Type"] == "AWS::Serverless::Function" 	and (r.get("Properties") or {}).get("PackageType") == "Image"))')
BUILD_EXCLUDES = $(if $(shell docker info >/dev/null 2>&1 && echo running),,$(foreach id,$(IMAGE_FUNCTIONS),--exclude $(id)))

## build: sam build; the layer and zip functions need no Docker (makefile builds: manylinux wheels for Python 3.12)
build: setup sam
	PYTHON=$(CURDIR)/$(BIN)/python $(SAM) build $(BUILD_EXCLUDES)

## validate: sam validate --lint and cfn-lint
validate: sam
	$(SAM) validate --lint
	$(SAM_VENV)/bin/cfn-lint template.yaml

## invoke: run FUNCTION's handler in-process on EVENT (moto for S3/DynamoDB unless AWS_ENDPOINT_URL is set);
## IMAGE=dog.jpg instead builds the API Gateway event for that file with infra/events.py
invoke: setup
	$(BIN)/python -m infra.invoke --function $(FUNCTION) $(if $(IMAGE),--image $(IMAGE),--event $(EVENT))

## api-key: add a key of ROLE (client or operator) named NAME to the deployed STACK, and print it
STACK ?= cifar10-serverless
api-key: setup
	$(BIN)/python -m infra.api_keys add --role $(ROLE) --name $(NAME) --stack $(STACK)

## deploy: build, then sam deploy with samconfig.toml's defaults (needs AWS credentials)
deploy: build
	$(SAM) deploy $(FLAGS)
