# baetyl_add_test(<name> SOURCES <files...> [LIBS <libs...>] [LABELS <labels...>])
# One GoogleTest executable, each of its tests registered with CTest.
include(GoogleTest)
function(baetyl_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
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
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    PROPERTIES ${properties}
    DISCOVERY_TIMEOUT 30)
endfunction()
