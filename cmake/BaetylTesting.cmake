# baetyl_add_test(<name> SOURCES <files...> [LIBS <libs...>] [LABELS <labels...>]
#                 [FIXTURES <fixtures...>])
# One GoogleTest executable, each of its tests registered with CTest.
include(GoogleTest)
function(baetyl_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS;FIXTURES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main
                        baetyl_compile_options)
  target_compile_definitions(${name} PRIVATE
    BAETYL_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    BAETYL_BINARY_DIR="${CMAKE_BINARY_DIR}")
  set(properties TIMEOUT 120)
  if(ARG_LABELS)
    list(APPEND properties LABELS "${ARG_LABELS}")
  endif()
  # FIXTURES: the CTest fixture every test of the executable requires (e.g. docker, the daemon).
  # One label and one fixture at most: gtest_discover_tests writes the properties unquoted.
  if(ARG_FIXTURES)
    list(APPEND properties FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    PROPERTIES ${properties}
    DISCOVERY_TIMEOUT 30)
endfunction()
