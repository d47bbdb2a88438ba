# baetyl_add_test(<name> SOURCES <files...> [LIBS <libs...>] [LABELS <labels...>]
#                 [FIXTURES <fixture>] [PROPERTIES <CTest property> <value> ...])
# One GoogleTest executable, each of its tests registered with CTest. FIXTURES: the CTest fixture
# every test of the executable requires (e.g. docker, the daemon). PROPERTIES are added to every
# test (TIMEOUT, 120 by default, may be given again; FIXTURES_REQUIRED, ...). One label and one
# fixture at most: gtest_discover_tests writes the properties unquoted.
include(GoogleTest)
function(baetyl_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS;FIXTURES;PROPERTIES" ${ARGN})
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
  if(ARG_FIXTURES)
    list(APPEND properties FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
  list(APPEND properties ${ARG_PROPERTIES})
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    PROPERTIES ${properties}
    DISCOVERY_TIMEOUT 30)
endfunction()
