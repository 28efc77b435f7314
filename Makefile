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

.PHONY: deps build demo test parity bench clean

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

# The main job: run DenseKit on a sample photo with the default model in Models/.
demo: build
	@$(BIN) --version
	@$(BIN) demo

# The test suite (optimised build: numeric tests are slow in debug).
test: deps
	$(SWIFT) build $(TESTFLAGS) --build-tests
	$(SWIFT) test $(TESTFLAGS) --skip-build --disable-swift-testing

# Every golden case under ../shared/golden through the parity runner.
parity: build
	$(BIN) parity ../shared/golden

bench: build
	$(BIN) bench conv

clean:
	rm -rf .build
