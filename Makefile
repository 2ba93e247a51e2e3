# The two fresh-machine commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INFORMER := $(VENV)/bin/informer
STAMP := $(VENV)/.installed
SAMPLE := src/informer_codec/data/sample.png
OUT := out
KODAK ?= ../shared/data/kodak

.PHONY: setup demo test lint bench train-mbt2018 train-informer gpu-pack clean

setup: $(STAMP)

# requirements.lock names every package at its exact version; installing it with --no-deps means pip
# resolves nothing, so a clean clone gets the set the suite passed with. Each download may resume ten
# times, and each install is retried up to four times, further apart each time: a download cut off
# mid-way (seen in CI) then costs a retry, not the run.
PIP := $(PY) -m pip install -q --retries 10
# The venv's own pip predates --resume-retries; it only installs the pinned pip.
PIP_UPGRADE := $(PIP) pip==26.2.1
PIP_INSTALL := $(PIP) --resume-retries 10
define retry
for attempt in 1 2 3 4; do $(1) && break; [ $$attempt = 4 ] && exit 1; echo "retrying: $(1)"; sleep $$((attempt * 20)); done
endef

# The editable install builds with the lock's hatchling (no isolated build environment to download).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(call retry,$(PIP_UPGRADE))
	$(call retry,$(PIP_INSTALL) --no-deps -r requirements.lock)
	$(call retry,$(PIP_INSTALL) --no-deps --no-build-isolation -e .)
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(OUT)
	@for model in informer mbt2018; do \
	  $(INFORMER) encode $(SAMPLE) $(OUT)/sample-$$model.inf --model $$model -q 75 && \
	  $(INFORMER) decode $(OUT)/sample-$$model.inf $(OUT)/sample-$$model.png && \
	  $(PY) -m informer_codec.bench.compare $(SAMPLE) $(OUT)/sample-$$model.png $(OUT)/sample-$$model.inf \
	  || exit 1; \
	done

test: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q

# Writes docs/bench/ (summary.md, bd_rate.md, speed.md, rd.png, <codec>.json): what the README quotes.
BENCH_OUT ?= docs/bench
bench: $(STAMP)
	$(INFORMER) bench $(KODAK) --out $(BENCH_OUT) --jobs 2

# Resumable CPU training runs from the shipped weights, with the recipe of the latest sessions (256x256
# crops, the real coding cost, a weight average; docs/training.md); they log to runs/<model>/train.log.
# To run both side by side on 2 cores, give each `--threads 1` via TRAIN_ARGS.
TRAIN_RECIPE := --patch 256 --batch 4 --lr 5e-5 --steps 16000 --checkpoint-minutes 4 --validate-every 1000 \
	--ema-decay 0.999 --quantizer round
TRAIN_ARGS ?=
train-mbt2018: $(STAMP)
	$(INFORMER) train --dataset ../shared/data/train --model mbt2018 --out runs/mbt2018 --resume \
	  --init-from weights/mbt2018.pt $(TRAIN_RECIPE) $(TRAIN_ARGS)

train-informer: $(STAMP)
	$(INFORMER) train --dataset ../shared/data/train --model informer --out runs/informer --resume \
	  --init-from weights/informer.pt $(TRAIN_RECIPE) --level-balance 0.25 $(TRAIN_ARGS)

# What a lent GPU machine needs beside this checkout (docs/training.md, "A GPU round"): ~21 MiB in
# data-cache/gpu (ignored; name it in the device tool's carry).
gpu-pack: $(STAMP)
	$(PY) -m informer_codec.train.pack --dataset ../shared/data/train --out data-cache/gpu

clean:
	rm -rf $(OUT) .pytest_cache

# Long fuzz run of the container parser and the decoder (tests/fuzz_harness.py); FUZZ_EXAMPLES cases in all.
FUZZ_EXAMPLES ?= 10000
.PHONY: fuzz
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) OMP_NUM_THREADS=1 $(PY) -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics
