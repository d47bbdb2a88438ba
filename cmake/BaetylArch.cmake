# The architecture the binaries are built for, in Debian's and RPM's spelling:
# BAETYL_PACKAGE_ARCH (amd64, arm64, armhf, ...) and BAETYL_PACKAGE_RPM_ARCH (x86_64, aarch64,
# armv7hl, ...). A cross build takes them from its toolchain file (cmake/toolchain-<arch>.cmake),
# a native build from the build machine. CPack's DEB and RPM generators are given them unless the
# project sets their architecture itself.
if(CMAKE_CROSSCOMPILING)
  if(NOT BAETYL_TARGET_ARCH)
    message(FATAL_ERROR "cross build without BAETYL_TARGET_ARCH: use a toolchain file of cmake/ "
                        "(cmake/toolchain-arm64.cmake or cmake/toolchain-armhf.cmake)")
  endif()
  set(BAETYL_PACKAGE_ARCH ${BAETYL_TARGET_ARCH})
  set(BAETYL_PACKAGE_RPM_ARCH ${BAETYL_TARGET_RPM_ARCH})
  # gtest_discover_tests runs each test program at build time, CTest runs them all: under qemu.
  if(BAETYL_BUILD_TESTS AND NOT CMAKE_CROSSCOMPILING_EMULATOR)
    message(FATAL_ERROR "${BAETYL_TARGET_QEMU} not found: the tests of a ${BAETYL_TARGET_ARCH} "
                        "build run under it (ARCH=${BAETYL_TARGET_ARCH} scripts/install-deps.sh "
                        "installs qemu-user-static), or configure with -DBAETYL_BUILD_TESTS=OFF")
  endif()
else()
  find_program(BAETYL_DPKG dpkg)
  if(BAETYL_DPKG)
    execute_process(COMMAND ${BAETYL_DPKG} --print-architecture
                    OUTPUT_VARIABLE BAETYL_PACKAGE_ARCH OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
  if(NOT BAETYL_PACKAGE_ARCH)
    set(BAETYL_PACKAGE_ARCH ${CMAKE_SYSTEM_PROCESSOR})
  endif()
  set(BAETYL_PACKAGE_RPM_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()
if(NOT DEFINED CPACK_DEBIAN_PACKAGE_ARCHITECTURE)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${BAETYL_PACKAGE_ARCH})
endif()
if(NOT DEFINED CPACK_RPM_PACKAGE_ARCHITECTURE)
  set(CPACK_RPM_PACKAGE_ARCHITECTURE ${BAETYL_PACKAGE_RPM_ARCH})
endif()
message(STATUS "Baetyl: building for ${BAETYL_PACKAGE_ARCH} (rpm: ${BAETYL_PACKAGE_RPM_ARCH})")
