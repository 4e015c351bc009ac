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

.PHONY: setup test train export evaluate bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt requirements/train.txt layers/classifier/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@

test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

## train: fit a model from scratch (or FLAGS="--init model.keras" to fine-tune); resumes from RUN_DIR
train: setup
	$(BIN)/python -m classifier train --data $(TRAIN_DATA) --out $(RUN_DIR) $(FLAGS)
	$(BIN)/python -m classifier export --model $(RUN_DIR)/model.keras --out $(RUN_DIR) --test-data $(TEST_DATA)

## evaluate: print the card's figures for MODEL (.tflite or .keras) on TEST_DATA
evaluate: setup
	$(BIN)/python -m classifier evaluate --model $(MODEL) --data $(TEST_DATA) $(FLAGS)

bench: setup
	$(BIN)/python -m bench $(FLAGS)

clean:
	rm -rf .aws-sam build .pytest_cache
