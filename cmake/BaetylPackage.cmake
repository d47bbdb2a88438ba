# make package (scripts/package.sh): CPack builds two packages of each kind under /usr/local, the
# prefix of the docs (see docs/install.md):
#   baetyl      components runtime and config: the programs, the unit, the examples, and
#               etc/baetyl/conf.yml + var/db/baetyl/application.yml as configuration files
#   baetyl-dev  component dev: the SDK for modules built out of tree
# The .deb's dependencies are computed from the binaries by dpkg-shlibdeps, the .rpm's by
# rpmbuild; the runtimes' interpreters are added by hand.
set(CPACK_PACKAGE_NAME baetyl)
set(CPACK_PACKAGE_VENDOR "Baetyl")
set(CPACK_PACKAGE_CONTACT "Baetyl maintainers <baetyl@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Baetyl, an edge computing framework (C++ implementation)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr/local)
set(CPACK_GENERATOR DEB RPM)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_COMPONENTS_ALL runtime config dev)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
# The release number: BAETYL_PACKAGE_RELEASE=2 scripts/package.sh builds an upgrade of the
# same version (the upgrade test does).
if(DEFINED ENV{BAETYL_PACKAGE_RELEASE})
  set(baetyl_release $ENV{BAETYL_PACKAGE_RELEASE})
else()
  set(baetyl_release 1)
endif()

set(baetyl_package_dir ${PROJECT_SOURCE_DIR}/scripts/package)
set(baetyl_control_dir ${PROJECT_BINARY_DIR}/package-control)
file(MAKE_DIRECTORY ${baetyl_control_dir})
file(WRITE ${baetyl_control_dir}/conffiles
     "/usr/local/etc/baetyl/conf.yml\n/usr/local/var/db/baetyl/application.yml\n")
foreach(script preinst postinst prerm postrm)
  file(COPY ${baetyl_package_dir}/${script} DESTINATION ${baetyl_control_dir}
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ
                        WORLD_EXECUTE)
endforeach()

# Debian
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${baetyl_release})
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
# The directories of the prefix belong to the system: out of the archives after CPack built them.
set(CPACK_POST_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/BaetylDebSystemDirs.cmake)
set(CPACK_BAETYL_SOURCE_DIR ${PROJECT_SOURCE_DIR})
set(CPACK_DEBIAN_BAETYL_PACKAGE_NAME baetyl)
set(CPACK_DEBIAN_BAETYL_PACKAGE_DEPENDS "python3, python3-grpcio, python3-yaml, nodejs")
# Docker is for docker mode only and, as in the v1 docs, installed on its own (scripts/install.sh
# --with-docker-example installs it): apt installs recommendations by default, and a native node
# has no use for dockerd. ca-certificates verifies TLS peers when no CA is configured.
set(CPACK_DEBIAN_BAETYL_PACKAGE_RECOMMENDS "ca-certificates")
set(CPACK_DEBIAN_BAETYL_PACKAGE_SUGGESTS "docker.io")
set(CPACK_DEBIAN_BAETYL_PACKAGE_CONTROL_EXTRA
    ${baetyl_control_dir}/conffiles ${baetyl_control_dir}/preinst ${baetyl_control_dir}/postinst
    ${baetyl_control_dir}/prerm ${baetyl_control_dir}/postrm)
set(CPACK_DEBIAN_BAETYL_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME baetyl-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_ARCHITECTURE ${CPACK_DEBIAN_PACKAGE_ARCHITECTURE})
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "baetyl (= ${PROJECT_VERSION}-${baetyl_release}), g++, cmake, libboost-dev, libssl-dev, \
nlohmann-json3-dev, libyaml-cpp-dev, libspdlog-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)

# RPM (rpmbuild from Debian's rpm package)
set(CPACK_RPM_COMPONENT_INSTALL ON)
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_RELEASE ${baetyl_release})
set(CPACK_RPM_PACKAGE_LICENSE "Apache-2.0")
set(CPACK_RPM_BAETYL_PACKAGE_NAME baetyl)
set(CPACK_RPM_BAETYL_PACKAGE_REQUIRES "python3, nodejs")
set(CPACK_RPM_BAETYL_PACKAGE_DESCRIPTION
    "Baetyl extends cloud computing, data and services to edge devices: the master (baetyl),
which supervises services as processes or Docker containers and serves its API on a Unix socket,
and the modules: the MQTT hub, function compute (manager, Python, Node and SQL runtimes), the
bridge to remote MQTT brokers, the cloud agent and the timer.")
set(CPACK_RPM_BAETYL_USER_FILELIST
    "%config(noreplace) /usr/local/etc/baetyl/conf.yml"
    "%config(noreplace) /usr/local/var/db/baetyl/application.yml")
set(CPACK_RPM_BAETYL_POST_INSTALL_SCRIPT_FILE ${baetyl_package_dir}/rpm-post)
set(CPACK_RPM_BAETYL_PRE_UNINSTALL_SCRIPT_FILE ${baetyl_package_dir}/rpm-preun)
set(CPACK_RPM_DEV_PACKAGE_NAME baetyl-dev)
set(CPACK_RPM_DEV_PACKAGE_REQUIRES "baetyl = ${PROJECT_VERSION}-${baetyl_release}")
set(CPACK_RPM_DEV_PACKAGE_DESCRIPTION
    "The Baetyl SDK for modules built out of tree: headers, static libraries and a CMake package
(find_package(baetyl) and target baetyl::sdk).")
# The directories of the prefix belong to the system, not to the package.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /usr/local /usr/local/bin /usr/local/etc /usr/local/include /usr/local/lib
    /usr/local/lib/cmake /usr/local/lib/systemd /usr/local/lib/systemd/system /usr/local/share
    /usr/local/share/doc /usr/local/var /usr/local/var/db /usr/local/var/log)
# The programs are stripped (with the toolchain's strip, CMAKE_STRIP) when CPack installs them,
# as `make tarball` and the images ship them and as Debian packages are.
set(CPACK_STRIP_FILES ON)
# Debian's rpm has no brp scripts of Red Hat's: no stripping of its own (done above), and no
# /usr/lib/.build-id links (the .deb has none either).
set(CPACK_RPM_SPEC_MORE_DEFINE "%define __os_install_post %{nil}\n%define _build_id_links none")

include(CPack)
cpack_add_component_group(baetyl DESCRIPTION "Baetyl: the master, the modules and the runtimes")
cpack_add_component_group(dev DESCRIPTION "Baetyl SDK: headers, static libraries, CMake package")
cpack_add_component(runtime GROUP baetyl)
cpack_add_component(config GROUP baetyl)
cpack_add_component(dev GROUP dev)
