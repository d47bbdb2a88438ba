# CPack post-build script (CPACK_POST_BUILD_SCRIPTS): takes the directories base-files creates
# under /usr/local (/usr/local itself, bin, etc, include, lib, share, ...) out of the data archive
# of every .deb CPack built (scripts/package/strip-system-dirs.py). dpkg removes, on purge, every
# empty directory a package's archive lists, including those the package found already there;
# without these entries /usr/local/etc and its siblings stay the system's. The package's preinst
# creates any that is missing.
set(source_dir "${CPACK_BAETYL_SOURCE_DIR}")
foreach(package IN LISTS CPACK_PACKAGE_FILES)
  if(NOT package MATCHES "\\.deb$")
    continue()
  endif()
  set(work "${package}.repack")
  file(REMOVE_RECURSE "${work}")
  file(MAKE_DIRECTORY "${work}")
  execute_process(COMMAND ar t "${package}" OUTPUT_VARIABLE members
                  OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
  string(REPLACE "\n" ";" members "${members}")
  if(NOT members STREQUAL "debian-binary;control.tar.gz;data.tar.gz")
    message(FATAL_ERROR "${package}: unexpected members '${members}' (expected gzip archives)")
  endif()
  execute_process(COMMAND ar x "${package}" WORKING_DIRECTORY "${work}"
                  COMMAND_ERROR_IS_FATAL ANY)
  execute_process(COMMAND /usr/bin/python3 ${source_dir}/scripts/package/strip-system-dirs.py
                          data.tar.gz data.tar.gz.new
                  WORKING_DIRECTORY "${work}" COMMAND_ERROR_IS_FATAL ANY)
  file(RENAME "${work}/data.tar.gz.new" "${work}/data.tar.gz")
  file(REMOVE "${package}")
  execute_process(COMMAND ar rc "${package}" debian-binary control.tar.gz data.tar.gz
                  WORKING_DIRECTORY "${work}" COMMAND_ERROR_IS_FATAL ANY)
  file(REMOVE_RECURSE "${work}")
endforeach()
