# The SDK as an installed CMake package (component dev, in make install and in baetyl-dev):
#   <prefix>/include/baetyl/...              the public headers
#   <prefix>/lib/libbaetyl_*.a               the SDK's static libraries and its spdlog/fmt build
#   <prefix>/lib/cmake/baetyl/               baetylConfig.cmake, baetylTargets.cmake
# A module outside this tree: find_package(baetyl REQUIRED) and
# target_link_libraries(my-module PRIVATE baetyl::sdk) (docs/sdk.md, "Building a module out of
# tree"). Included from sdk/CMakeLists.txt once the SDK's targets exist.
include(CMakePackageConfigHelpers)
set_target_properties(baetyl_spdlog PROPERTIES EXPORT_NAME spdlog)
set_target_properties(baetyl_compile_options PROPERTIES EXPORT_NAME compile_options)
set(baetyl_sdk_targets baetyl_config baetyl_log baetyl_env baetyl_http baetyl_api
    baetyl_mqtt_codec baetyl_mqtt_client baetyl_context baetyl_sdk baetyl_spdlog
    baetyl_compile_options)
install(TARGETS ${baetyl_sdk_targets} EXPORT baetylTargets
        ARCHIVE DESTINATION lib COMPONENT dev
        INCLUDES DESTINATION include)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/include/baetyl DESTINATION include COMPONENT dev)
install(EXPORT baetylTargets NAMESPACE baetyl:: DESTINATION lib/cmake/baetyl COMPONENT dev)

set(baetyl_config_dir ${PROJECT_BINARY_DIR}/sdk-package)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/baetylConfig.cmake.in
  ${baetyl_config_dir}/baetylConfig.cmake INSTALL_DESTINATION lib/cmake/baetyl)
write_basic_package_version_file(${baetyl_config_dir}/baetylConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${baetyl_config_dir}/baetylConfig.cmake ${baetyl_config_dir}/baetylConfigVersion.cmake
        DESTINATION lib/cmake/baetyl COMPONENT dev)
