# Thin wrapper over CMake with the verbs of the original Baetyl Makefile.
#   make            install missing build dependencies, then build everything (Release)
#   make test       install every dependency, build, run every test
#   make run        install, build, run the example in the foreground (Ctrl-C stops it);
#                   MODE=docker runs example/docker in containers, building the images first;
#                   MODE=agent runs example/native-agent with the test cloud (docs/agent.md)
#   make image      install, build, build the module images (starts Docker when it is not running)
#   make clean | rebuild    (clean also removes build-fuzz, the clang build of scripts/fuzz.sh)
# Variables: BUILD_DIR (default build), BUILD_TYPE (Release), SANITIZE=ON (ASan + UBSan build in
# build-asan), JOBS (parallel jobs, default: number of cores), PREFIX (install prefix, /usr/local),
# MODE (native, docker or agent, for make run; default native).

BUILD_TYPE ?= Release
SANITIZE ?= OFF
ifeq ($(SANITIZE),ON)
BUILD_DIR ?= build-asan
else
BUILD_DIR ?= build
endif
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
CMAKE_FLAGS ?=
MODE ?= native

.PHONY: all deps deps-build configure build test run install install-native uninstall \
        uninstall-native image package clean rebuild

all: deps-build build

deps:
	@scripts/install-deps.sh

deps-build:
	@scripts/install-deps.sh --build

configure:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DBAETYL_SANITIZE=$(SANITIZE) \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: deps build
	@scripts/run-tests.sh $(BUILD_DIR)

run: deps build
	@scripts/run-example.sh $(BUILD_DIR) $(MODE)

install install-native uninstall uninstall-native:
	@echo "make $@: not available yet; installing Baetyl lands with the master and packaging issues." >&2
	@exit 1

image: deps build
	@scripts/build-images.sh $(BUILD_DIR)

package:
	@echo "make package: not available yet; deb/rpm packages land with the packaging issue." >&2
	@exit 1

clean:
	@rm -rf build build-asan build-fuzz

rebuild: clean all
