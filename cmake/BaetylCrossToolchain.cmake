# What the toolchain files cmake/toolchain-<arch>.cmake share: a Debian multiarch cross build.
# They set BAETYL_TARGET_ARCH (Debian architecture), BAETYL_TARGET_TRIPLET, BAETYL_TARGET_RPM_ARCH
# and BAETYL_TARGET_QEMU, then include this file.
#
# - Compilers: Debian's gcc-<triplet> and g++-<triplet>.
# - Libraries: the :<arch> packages of multiarch, installed beside the build machine's in
#   /usr/lib/<triplet>, so there is no sysroot: headers are shared, libraries are found by triplet.
# - protoc and grpc_cpp_plugin are the build machine's (programs are searched on the host only).
# - yaml-cpp's -dev package cannot be installed for two architectures at once (it is not
#   Multi-Arch: same in Debian 12): scripts/install-deps.sh unpacks the target's copy of it under
#   BAETYL_CROSS_ROOT/<arch> instead.
# - Test programs run under Debian's qemu-user-static (CMAKE_CROSSCOMPILING_EMULATOR), so CTest
#   and gtest_discover_tests run them on the build machine.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${BAETYL_TARGET_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${BAETYL_TARGET_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${BAETYL_TARGET_TRIPLET})

if(NOT DEFINED BAETYL_CROSS_ROOT)
  set(BAETYL_CROSS_ROOT /usr/local/lib/baetyl-cross)
endif()
list(APPEND CMAKE_PREFIX_PATH ${BAETYL_CROSS_ROOT}/${BAETYL_TARGET_ARCH}/usr)
list(REMOVE_DUPLICATES CMAKE_PREFIX_PATH)

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# pkg-config (gRPC's package config asks it for re2 and OpenSSL) reads the target's .pc files only.
string(CONCAT baetyl_pkg_config_libdir
       "${BAETYL_CROSS_ROOT}/${BAETYL_TARGET_ARCH}/usr/lib/${BAETYL_TARGET_TRIPLET}/pkgconfig"
       ":/usr/lib/${BAETYL_TARGET_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_LIBDIR} "${baetyl_pkg_config_libdir}")

find_program(BAETYL_QEMU_PROGRAM ${BAETYL_TARGET_QEMU})
if(BAETYL_QEMU_PROGRAM)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${BAETYL_QEMU_PROGRAM})
endif()
