# baetyl_generate_grpc(<target> <proto file>): C++ protobuf + gRPC sources compiled into <target>.
function(baetyl_generate_grpc target proto)
  get_filename_component(proto_abs ${proto} ABSOLUTE)
  get_filename_component(proto_dir ${proto_abs} DIRECTORY)
  get_filename_component(proto_name ${proto_abs} NAME_WE)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/generated)
  file(MAKE_DIRECTORY ${out_dir})
  set(generated
    ${out_dir}/${proto_name}.pb.cc ${out_dir}/${proto_name}.pb.h
    ${out_dir}/${proto_name}.grpc.pb.cc ${out_dir}/${proto_name}.grpc.pb.h)
  get_target_property(grpc_plugin gRPC::grpc_cpp_plugin LOCATION)
  add_custom_command(
    OUTPUT ${generated}
    COMMAND protobuf::protoc
      --proto_path=${proto_dir}
      --cpp_out=${out_dir}
      --grpc_out=${out_dir}
      --plugin=protoc-gen-grpc=${grpc_plugin}
      ${proto_abs}
    DEPENDS ${proto_abs} protobuf::protoc
    COMMENT "Generating C++ protobuf and gRPC code from ${proto_name}.proto")
  add_library(${target} STATIC ${generated})
  target_include_directories(${target} PUBLIC ${out_dir})
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf gRPC::grpc++)
endfunction()

# baetyl_generate_python_grpc(<target> <proto file> <output dir>): Python stubs for the runtimes.
function(baetyl_generate_python_grpc target proto out_dir)
  get_filename_component(proto_abs ${proto} ABSOLUTE)
  get_filename_component(proto_dir ${proto_abs} DIRECTORY)
  get_filename_component(proto_name ${proto_abs} NAME_WE)
  find_program(GRPC_PYTHON_PLUGIN grpc_python_plugin REQUIRED)
  file(MAKE_DIRECTORY ${out_dir})
  set(generated ${out_dir}/${proto_name}_pb2.py ${out_dir}/${proto_name}_pb2_grpc.py)
  add_custom_command(
    OUTPUT ${generated}
    COMMAND protobuf::protoc
      --proto_path=${proto_dir}
      --python_out=${out_dir}
      --grpc_out=${out_dir}
      --plugin=protoc-gen-grpc=${GRPC_PYTHON_PLUGIN}
      ${proto_abs}
    DEPENDS ${proto_abs} protobuf::protoc
    COMMENT "Generating Python protobuf and gRPC code from ${proto_name}.proto")
  add_custom_target(${target} ALL DEPENDS ${generated})
endfunction()
