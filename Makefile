# hps — the two commands of the README, plus helpers. Every target installs what it needs.
#   make run    main job on the embedded default (no downloads beyond the one-time set-up)
#   make test   build + ctest + every fuzzer for HPS_FUZZ_SECONDS (default 30) each
#   make fuzz   the fuzzers alone (HPS_FUZZ_SECONDS=600 make fuzz for a longer hunt)
HPS_HOME    ?= $(HOME)/.cache/hps
TORCH_VENV  ?= $(HPS_HOME)/torch-2.11
BUILD       ?= build
BUILD_TYPE  ?= Release
JOBS        ?= $(shell nproc)
# TORCH_PREFIX: your own LibTorch (a directory with share/cmake/Torch); default: the set-up's venv.
TORCH_PREFIX ?=

.PHONY: setup configure build test fuzz run clean fixtures roundtrip

setup:
	@HPS_HOME="$(HPS_HOME)" TORCH_VENV="$(TORCH_VENV)" TORCH_PREFIX="$(TORCH_PREFIX)" bash scripts/setup.sh

$(BUILD)/build.ninja:
	@prefix="$(TORCH_PREFIX)"; \
	 if [ -z "$$prefix" ]; then prefix=$$("$(TORCH_VENV)/bin/python" -c 'import torch;print(torch.utils.cmake_prefix_path)'); fi; \
	 cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_PREFIX_PATH="$$prefix"

# setup runs once per make invocation, before cmake configures (only when build.ninja is missing).
configure: setup
	@$(MAKE) --no-print-directory $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	@bash scripts/fuzz.sh

# libFuzzer + ASan + UBSan over every parser of untrusted bytes (fuzz/, docs/reliability.md); needs only clang.
fuzz: setup
	@bash scripts/fuzz.sh

run: build
	./$(BUILD)/hps demo

# Regenerate the committed golden fixtures (needs PyPI's numpy; the C++ tests never run Python).
fixtures: setup
	"$(TORCH_VENV)/bin/pip" install --quiet numpy transformers peft safetensors tokenizers jinja2 nltk sacrebleu trl
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_loss_fixtures.py tests/fixtures/losses.json
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_model_fixtures.py
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_tokenizer_fixtures.py
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_train_fixtures.py
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_bleu_fixtures.py
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_trl_fixtures.py tests/fixtures/data/trl_extract_prompt.json
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_spm_fixtures.py tests/fixtures/tokenizers/spm_cases.json

# The Python half of the model round trip: hps exports, transformers/PEFT load and compare.
roundtrip: build
	"$(TORCH_VENV)/bin/python" tools/fixtures/make_model_fixtures.py --roundtrip $(BUILD)/hps

clean:
	rm -rf $(BUILD) build-fuzz
