# libFuzzer targets: baetyl_add_fuzzer(<name> SOURCES <files...> [LIBS <libs...>] [DICT <file>])
# Its seed corpus is the directory corpus/<name> next to the CMakeLists.txt that declares it.
#
# BAETYL_FUZZ=ON is a build of its own, with clang (scripts/fuzz.sh configures one): everything is
# compiled with coverage instrumentation and ASan + UBSan, each fuzzer linked with libFuzzer, the
# target `fuzz` builds them all, and <build>/fuzzers/<name> tells scripts/fuzz.sh where its
# binary, corpus and dictionary are.
#
# In the regular build (BAETYL_BUILD_TESTS=ON) each fuzzer is a CTest test instead (label fuzz):
# it runs for BAETYL_FUZZ_SECONDS through scripts/fuzz.sh, after the test fuzz_build has built the
# fuzzers with clang in <build>/fuzz. They take one core, one after the other.
set(BAETYL_FUZZ_SECONDS 60 CACHE STRING "Seconds each fuzzer runs in the fuzz tests of make test")

if(BAETYL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "BAETYL_FUZZ needs clang (libFuzzer), not ${CMAKE_CXX_COMPILER_ID}: run "
                        "scripts/fuzz.sh, or configure a build directory of its own with "
                        "-DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  add_custom_target(fuzz)
  file(REMOVE_RECURSE ${CMAKE_BINARY_DIR}/fuzzers)
elseif(BAETYL_BUILD_TESTS)
  set(baetyl_fuzz_script ${CMAKE_CURRENT_LIST_DIR}/../scripts/fuzz.sh)
  add_test(NAME fuzz_build
           COMMAND ${baetyl_fuzz_script} --build-dir ${CMAKE_BINARY_DIR}/fuzz --build-only)
  set_tests_properties(fuzz_build PROPERTIES FIXTURES_SETUP baetyl_fuzz_build LABELS fuzz
                       TIMEOUT 1800 RESOURCE_LOCK baetyl_fuzz)
endif()

function(baetyl_add_fuzzer name)
  cmake_parse_arguments(ARG "" "DICT" "SOURCES;LIBS" ${ARGN})
  set(corpus ${CMAKE_CURRENT_SOURCE_DIR}/corpus/${name})
  if(NOT IS_DIRECTORY ${corpus})
    message(FATAL_ERROR "fuzzer ${name}: no seed corpus in ${corpus}")
  endif()
  if(ARG_DICT)
    get_filename_component(ARG_DICT ${ARG_DICT} ABSOLUTE)
  endif()
  if(BAETYL_FUZZ)
    add_executable(${name} ${ARG_SOURCES})
    target_link_libraries(${name} PRIVATE ${ARG_LIBS} baetyl_compile_options)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz ${name})
    file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/fuzzers/${name}
         CONTENT "binary=$<TARGET_FILE:${name}>\ncorpus=${corpus}\ndict=${ARG_DICT}\n")
  elseif(BAETYL_BUILD_TESTS)
    math(EXPR timeout "${BAETYL_FUZZ_SECONDS} + 300")
    add_test(NAME ${name}
             COMMAND ${baetyl_fuzz_script} --build-dir ${CMAKE_BINARY_DIR}/fuzz --no-build
                     ${BAETYL_FUZZ_SECONDS} ${name})
    set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED baetyl_fuzz_build LABELS fuzz
                         TIMEOUT ${timeout} RESOURCE_LOCK baetyl_fuzz)
  endif()
endfunction()
