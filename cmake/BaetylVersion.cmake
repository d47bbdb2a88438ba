# Version facts compiled into every binary (`baetyl version`, inspect's software section).
execute_process(
  COMMAND git rev-parse --short HEAD
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
  OUTPUT_VARIABLE BAETYL_GIT_REVISION
  OUTPUT_STRIP_TRAILING_WHITESPACE
  ERROR_QUIET)
if(NOT BAETYL_GIT_REVISION)
  set(BAETYL_GIT_REVISION unknown)
endif()
set(BAETYL_VERSION ${PROJECT_VERSION})
