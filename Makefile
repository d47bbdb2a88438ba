# Thin wrapper over CMake with the verbs of the original Baetyl Makefile.
#   make            install missing build dependencies, then build everything (Release)
#   make test       install every dependency, build, run every test
#   make run        install, build the programs of MODE (not the tests), run the example in the
#                   foreground (Ctrl-C stops it); MODE=docker runs example/docker in containers,
#                   building the images first; MODE=agent runs example/native-agent with the test
#                   cloud (docs/agent.md)
#   make install    build the programs, install them, the SDK and example/docker under PREFIX
#                   (DESTDIR honoured); install-native: the same with example/native;
#                   uninstall | uninstall-native: remove what was installed (PURGE=1: also the
#                   data and logs under PREFIX/var); see docs/install.md
#   make package    build the programs, then the .deb and .rpm packages in BUILD_DIR/packages
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
PURGE ?= 0
# The daemons and runtimes: what make run, install and package build (the tests are not built).
PROGRAMS := baetyl baetyl-hub baetyl-function-manager baetyl-function-sql baetyl-function-python \
            baetyl-function-node baetyl-remote-mqtt baetyl-timer baetyl-agent
# What each mode of make run starts (docker: the images of every module).
RUN_PROGRAMS_native := baetyl baetyl-hub baetyl-function-manager baetyl-function-sql \
                       baetyl-function-python baetyl-function-node baetyl-remote-mqtt
RUN_PROGRAMS_agent := baetyl baetyl-hub baetyl-timer baetyl-agent
RUN_PROGRAMS_docker := $(PROGRAMS)

.PHONY: all deps deps-build configure build programs test run install install-native uninstall \
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

programs: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target $(PROGRAMS)

run: deps configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target $(or $(RUN_PROGRAMS_$(MODE)),$(PROGRAMS))
	@scripts/run-example.sh $(BUILD_DIR) $(MODE)

install: deps programs
	@scripts/install-tree.sh install docker $(BUILD_DIR) "$(PREFIX)"

install-native: deps programs
	@scripts/install-tree.sh install native $(BUILD_DIR) "$(PREFIX)"

uninstall uninstall-native:
	@PURGE=$(PURGE) scripts/install-tree.sh uninstall "$(PREFIX)"

image: deps build
	@scripts/build-images.sh $(BUILD_DIR)

package: deps programs
	@scripts/package.sh $(BUILD_DIR)

clean:
	@rm -rf build build-asan build-fuzz

rebuild: clean all
