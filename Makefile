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
#   make tarball    install, build, pack the binaries into
#                   BUILD_DIR/baetyl-<version>-linux-<arch>.tar.gz
#   make test-arm   cross-build for arm64 and armhf and test them under qemu (scripts/test-arm.sh)
#   make clean | rebuild    (clean also removes build-fuzz, the clang build of scripts/fuzz.sh)
# Variables: BUILD_DIR (default build), BUILD_TYPE (Release), SANITIZE=ON (ASan + UBSan build in
# build-asan), JOBS (parallel jobs, default: number of cores), PREFIX (install prefix, /usr/local),
# MODE (native, docker or agent, for make run; default native).
# ARCH=arm64|armhf: a cross build for ARM into build-$(ARCH) with cmake/toolchain-$(ARCH).cmake;
# deps installs its cross compiler and libraries, `make tarball` packs its binaries, `make package`
# builds packages of that architecture, `make image` its images tagged latest-$(ARCH) (docs/arm.md).

BUILD_TYPE ?= Release
SANITIZE ?= OFF
ARCH ?=
ifeq ($(ARCH),$(shell dpkg --print-architecture 2>/dev/null))
override ARCH :=
endif
ifneq ($(ARCH),)
ifeq ($(filter $(ARCH),arm64 armhf),)
$(error ARCH=$(ARCH): cross builds are for arm64 or armhf (docs/arm.md))
endif
BUILD_DIR ?= build-$(ARCH)
CROSS_FLAGS := -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchain-$(ARCH).cmake
endif
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
        uninstall-native image package tarball test-arm clean rebuild

all: deps-build build

deps:
	@ARCH=$(ARCH) scripts/install-deps.sh

deps-build:
	@ARCH=$(ARCH) scripts/install-deps.sh --build

configure:
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DBAETYL_SANITIZE=$(SANITIZE) \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CROSS_FLAGS) $(CMAKE_FLAGS)

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

# With ARCH, the images of that architecture from its programs, tagged latest-$(ARCH) (docs/arm.md).
ifneq ($(ARCH),)
image: deps programs
else
image: deps build
endif
	@scripts/build-images.sh $(BUILD_DIR)

package: deps programs
	@scripts/package.sh $(BUILD_DIR)

# The binaries of BUILD_DIR (of ARCH's build with ARCH) in a tarball: scripts/make-tarball.sh.
tarball: deps build
	@scripts/make-tarball.sh $(BUILD_DIR) $(or $(ARCH),$(shell dpkg --print-architecture))

# The arm64 and armhf builds under qemu-user-static (ARCH=arm64 or armhf: that one only).
test-arm:
	@for arch in $(or $(ARCH),arm64 armhf); do ARCH=$$arch scripts/install-deps.sh || exit 1; done
	@JOBS=$(JOBS) scripts/test-arm.sh $(ARCH)

clean:
	@rm -rf build build-asan build-fuzz build-arm64 build-armhf

rebuild: clean all
