# DenseKit: the two commands of the README are `make demo` and `make test`.
# Both first run `deps`, which installs the Debian packages DenseKit needs when
# they are missing (idempotent: it does nothing when they are present).

SWIFT       ?= swift
CONFIG      ?= release
SWIFTFLAGS  ?= -c $(CONFIG)
TESTFLAGS   ?= -c $(CONFIG) -Xswiftc -enable-testing
DEB_PACKAGES = libopenblas-dev libpng-dev libjpeg-dev zlib1g-dev pkg-config
BIN          = $(shell $(SWIFT) build $(SWIFTFLAGS) --show-bin-path 2>/dev/null)/densekit
SAMPLE      ?= Samples/chelsea.png

.PHONY: deps build demo test test-asan test-tsan fuzz parity bench clean

deps:
	@missing=""; \
	pkg-config --exists openblas 2>/dev/null || missing="$$missing libopenblas-dev"; \
	pkg-config --exists libpng16 2>/dev/null || missing="$$missing libpng-dev"; \
	pkg-config --exists libjpeg 2>/dev/null || [ -f /usr/include/jpeglib.h ] || missing="$$missing libjpeg-dev"; \
	command -v pkg-config >/dev/null 2>&1 || missing="pkg-config $(DEB_PACKAGES)"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEB_PACKAGES) >/dev/null || \
	    { echo "deps: could not install $(DEB_PACKAGES); install them by hand"; exit 1; }; \
	else echo "deps: libopenblas, libpng, libjpeg present"; fi

build: deps
	$(SWIFT) build $(SWIFTFLAGS)

# The main job: run DenseKit on a sample photo with the default model in Models/ (labels, overlay and a
# per-class summary in demo-output/; without a model in Models/ it describes the photo instead).
demo: build
	@$(BIN) --version
	@$(BIN) demo --image $(SAMPLE) --output demo-output

# The test suite (optimised build: numeric tests are slow in debug).
test: deps
	$(SWIFT) build $(TESTFLAGS) --build-tests
	$(SWIFT) test $(TESTFLAGS) --skip-build --disable-swift-testing

# The test suite under AddressSanitizer (Swift and C code), in its own scratch folder. The sanitizer is given on
# the command line only (never in Package.swift).
ASAN_TESTFLAGS = $(TESTFLAGS) --sanitize=address --scratch-path .build-asan
test-asan: deps
	$(SWIFT) build $(ASAN_TESTFLAGS) --build-tests
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=0} $(SWIFT) test $(ASAN_TESTFLAGS) --skip-build --disable-swift-testing

# The concurrency tests (concurrent calls on shared models and plans, thread-count invariance) under
# ThreadSanitizer. TSAN_FILTER selects them; TSAN_OPTIONS may add suppressions (tools/tsan.supp).
TSAN_TESTFLAGS = $(TESTFLAGS) --sanitize=thread --scratch-path .build-tsan
TSAN_FILTER   ?= Concurren|Thread
test-tsan: deps
	$(SWIFT) build $(TSAN_TESTFLAGS) --build-tests
	TSAN_OPTIONS=$${TSAN_OPTIONS:-halt_on_error=1 suppressions=$(CURDIR)/tools/tsan.supp} $(SWIFT) test $(TSAN_TESTFLAGS) --skip-build --disable-swift-testing --filter '$(TSAN_FILTER)'

# Every fuzz target for FUZZ_SECONDS each (libFuzzer + ASan; tools/fuzz.sh).
FUZZ_SECONDS ?= 60
fuzz: deps
	tools/fuzz.sh all $(FUZZ_SECONDS)

# Every golden case under ../shared/golden through the parity runner.
parity: build
	$(BIN) parity ../shared/golden

bench: build
	$(BIN) bench conv

clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz
