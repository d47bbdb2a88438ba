# Cross build for 64-bit ARM (Debian arm64: Raspberry Pi OS 64-bit, Jetson, most arm64 boards):
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake
# or make ARCH=arm64.
# `ARCH=arm64 scripts/install-deps.sh --build` installs what it needs; see docs/arm.md.
set(BAETYL_TARGET_ARCH arm64)
set(BAETYL_TARGET_TRIPLET aarch64-linux-gnu)
set(BAETYL_TARGET_RPM_ARCH aarch64)
set(BAETYL_TARGET_QEMU qemu-aarch64-static)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/BaetylCrossToolchain.cmake)
