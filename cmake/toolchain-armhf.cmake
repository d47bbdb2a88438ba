# Cross build for 32-bit ARM with hardware floating point (Debian armhf: ARMv7, Raspberry Pi 2 and
# later on a 32-bit OS):
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-armhf.cmake
# or make ARCH=armhf.
# `ARCH=armhf scripts/install-deps.sh --build` installs what it needs; see docs/arm.md.
set(BAETYL_TARGET_ARCH armhf)
set(BAETYL_TARGET_TRIPLET arm-linux-gnueabihf)
set(BAETYL_TARGET_RPM_ARCH armv7hl)
set(BAETYL_TARGET_QEMU qemu-arm-static)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
include(${CMAKE_CURRENT_LIST_DIR}/BaetylCrossToolchain.cmake)
# g++ notes at every std::map call that the ARM ABI of passing some structures changed in GCC 7.1;
# every object here is built by g++ 12, so the notes are noise.
set(CMAKE_CXX_FLAGS_INIT -Wno-psabi)
