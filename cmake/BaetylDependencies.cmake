# Every third-party library comes from Debian 12 packages (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(LibArchive 3 REQUIRED)  # the agent unpacks volume zips
find_package(CURL REQUIRED)  # the agent's HTTPS to its cloud
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
if(BAETYL_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# Static archives of yaml-cpp and SQLite where Debian ships them: a module then maps only the code
# it uses, not a whole shared library (the hub's idle RSS target is mosquitto's).
find_library(BAETYL_YAML_CPP_ARCHIVE NAMES libyaml-cpp.a)
if(BAETYL_YAML_CPP_ARCHIVE)
  get_target_property(yaml_cpp_includes yaml-cpp INTERFACE_INCLUDE_DIRECTORIES)
  add_library(baetyl_yaml_cpp STATIC IMPORTED)
  set_target_properties(baetyl_yaml_cpp PROPERTIES IMPORTED_LOCATION ${BAETYL_YAML_CPP_ARCHIVE})
  if(yaml_cpp_includes)
    set_target_properties(baetyl_yaml_cpp PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${yaml_cpp_includes}")
  endif()
  add_library(baetyl::yaml_cpp ALIAS baetyl_yaml_cpp)
else()
  add_library(baetyl::yaml_cpp ALIAS yaml-cpp)
endif()

find_library(BAETYL_SQLITE3_ARCHIVE NAMES libsqlite3.a)
if(BAETYL_SQLITE3_ARCHIVE)
  add_library(baetyl_sqlite3 STATIC IMPORTED)
  set_target_properties(baetyl_sqlite3 PROPERTIES IMPORTED_LOCATION ${BAETYL_SQLITE3_ARCHIVE}
    INTERFACE_INCLUDE_DIRECTORIES "${SQLite3_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "m;${CMAKE_DL_LIBS};Threads::Threads")
  add_library(baetyl::sqlite3 ALIAS baetyl_sqlite3)
else()
  add_library(baetyl::sqlite3 ALIAS SQLite::SQLite3)
endif()

# libarchive's static archive (Debian's libarchive-dev ships it): the agent reads zips only, and
# the shared library would bring libxml2 and ICU (about 40 MB) into the agent's image for formats
# it never reads. The libraries its zip reader and disk writer use are all in
# debian:bookworm-slim; their -dev packages are in scripts/install-deps.sh.
find_library(BAETYL_LIBARCHIVE_ARCHIVE NAMES libarchive.a)
if(NOT BAETYL_LIBARCHIVE_ARCHIVE)
  message(FATAL_ERROR "libarchive.a not found: install libarchive-dev (scripts/install-deps.sh --build)")
endif()
set(baetyl_libarchive_deps)
foreach(dep nettle acl lzma zstd bz2 z)
  find_library(BAETYL_LIBARCHIVE_${dep} NAMES ${dep})
  if(NOT BAETYL_LIBARCHIVE_${dep})
    message(FATAL_ERROR "lib${dep} (for libarchive's static archive) not found: run "
                        "scripts/install-deps.sh --build")
  endif()
  list(APPEND baetyl_libarchive_deps ${BAETYL_LIBARCHIVE_${dep}})
endforeach()
add_library(baetyl_libarchive STATIC IMPORTED)
set_target_properties(baetyl_libarchive PROPERTIES IMPORTED_LOCATION ${BAETYL_LIBARCHIVE_ARCHIVE}
  INTERFACE_INCLUDE_DIRECTORIES "${LibArchive_INCLUDE_DIRS}"
  INTERFACE_LINK_LIBRARIES "${baetyl_libarchive_deps}")
add_library(baetyl::libarchive ALIAS baetyl_libarchive)

# spdlog and fmt compiled once from Debian's headers into a static library instead of
# libspdlog.so and libfmt.so: see cmake/spdlog_static/spdlog.cpp. Every target must use
# baetyl::spdlog, never spdlog::spdlog (two copies would mean two logger registries).
add_library(baetyl_spdlog STATIC ${CMAKE_CURRENT_LIST_DIR}/spdlog_static/spdlog.cpp
            ${CMAKE_CURRENT_LIST_DIR}/spdlog_static/fmt.cpp)
target_compile_definitions(baetyl_spdlog PUBLIC SPDLOG_COMPILED_LIB SPDLOG_FMT_EXTERNAL)
target_link_libraries(baetyl_spdlog PUBLIC Threads::Threads)
add_library(baetyl::spdlog ALIAS baetyl_spdlog)
