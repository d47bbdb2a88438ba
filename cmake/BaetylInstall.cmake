# What `make install`, `make install-native` and the packages put under the prefix (see
# docs/install.md). Components:
#   runtime         bin/ (the master, the modules, the runtimes, baetyl-update-guard),
#                   lib/baetyl/function-node (the Node runtime's packages),
#                   lib/systemd/system/baetyl.service, var/log/baetyl/,
#                   share/baetyl/example/{docker,native} and share/baetyl/systemd/docker.conf
#                   (what scripts/install.sh imports), share/doc/baetyl/install.md
#   example-docker  example/docker as etc/baetyl/conf.yml + var/db/baetyl/... (make install) and
#                   the docker.service drop-in
#   example-native  example/native the same way (make install-native)
#   config          the packages' own etc/baetyl/conf.yml and var/db/baetyl/application.yml
#                   (conffiles: docker mode, no services)
#   dev             the SDK: headers, static libraries, lib/cmake/baetyl (sdk/CMakeLists.txt)
set(baetyl_unit_template ${PROJECT_SOURCE_DIR}/scripts/baetyl.service.in)
set(baetyl_unit_staged ${PROJECT_BINARY_DIR}/install/baetyl.service)
# The unit names the prefix the files land under, known only when installing (cmake --install
# --prefix, CPack's /usr/local).
install(CODE "
  set(BAETYL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${baetyl_unit_template}\" \"${baetyl_unit_staged}\" @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\" TYPE FILE
       FILES \"${baetyl_unit_staged}\")"
  COMPONENT runtime)
install(DIRECTORY DESTINATION var/log/baetyl COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/example/docker ${PROJECT_SOURCE_DIR}/example/native
        DESTINATION share/baetyl/example COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/baetyl-docker.conf DESTINATION share/baetyl/systemd
        RENAME docker.conf COMPONENT runtime)
install(FILES ${PROJECT_SOURCE_DIR}/docs/install.md DESTINATION share/doc/baetyl
        COMPONENT runtime)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/example/docker/ DESTINATION . COMPONENT example-docker)
install(FILES ${PROJECT_SOURCE_DIR}/scripts/baetyl-docker.conf
        DESTINATION lib/systemd/system/baetyl.service.d RENAME docker.conf
        COMPONENT example-docker)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/example/native/ DESTINATION . COMPONENT example-native)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/package/etc ${PROJECT_SOURCE_DIR}/scripts/package/var
        DESTINATION . COMPONENT config)

# `cpack` (make package) installs the components without building `all` first: the Makefile
# builds the programs, and the test binaries are not needed for a package.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)
