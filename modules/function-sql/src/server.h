#pragma once
// baetyl-function-sql: the baetyl.Function gRPC service answering with SQL queries over the
// payload. Configuration keys are those of the documented function runtimes (README.md).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "baetyl/config/reader.h"
#include "baetyl/context.h"
#include "function.grpc.pb.h"
#include "sql/sql.h"

namespace baetyl::sql {

struct ServerConfig {
  // Overridden by BAETYL_SERVICE_INSTANCE_ADDRESS, which the function manager sets per instance.
  std::string address = "0.0.0.0:50051";
  // Read for compatibility with the other runtimes' configuration. Calls are evaluated on gRPC's
  // own threads (evaluation takes microseconds and never blocks), so it caps nothing.
  unsigned workers_max = 0;
  std::uint32_t concurrent_max = 0;  // concurrent calls per connection; 0: no limit
  config::ByteSize message_length_max = config::operator""_MiB(4);
  std::string ca;
  std::string key;
  std::string cert;
};

struct FunctionConfig {
  std::string name;
  std::string handler;  // the SQL text
};

struct RuntimeConfig {
  ServerConfig server;
  std::vector<FunctionConfig> functions;
};

// Every handler is parsed here: a bad query is reported at `functions[i].handler` with its
// position.
void describe(config::Reader& r, ServerConfig& c);
void describe(config::Reader& r, FunctionConfig& c);
void describe(config::Reader& r, RuntimeConfig& c);

// Answers each call on the gRPC thread that received it.
class FunctionService final : public Function::CallbackService {
 public:
  // Throws SqlError for a bad handler. `message_length_max`: the server's bound on a received
  // message, told to CallStream clients.
  FunctionService(const std::vector<FunctionConfig>& functions, std::size_t message_length_max);

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const FunctionMessage* request, FunctionMessage* reply) override;
  // Many calls on one stream: the replies of a batch of requests are written as soon as they are
  // evaluated, together with those of batches read while the previous write was in flight.
  grpc::ServerBidiReactor<FunctionMessages, FunctionMessages>* CallStream(
      grpc::CallbackServerContext* context) override;

  // The same without gRPC: the reply for `request`.
  grpc::Status handle(const FunctionMessage& request, FunctionMessage& reply) const;
  std::size_t message_length_max() const { return message_length_max_; }

 private:
  std::size_t message_length_max_;
  std::map<std::string, Query, std::less<>> queries_;
  std::string names_;
};

// The address to listen on: BAETYL_SERVICE_INSTANCE_ADDRESS when set, else `configured`; a
// tcp:// prefix is dropped.
std::string listen_address(const std::string& configured);

// Serves until the context is asked to stop, then lets calls in flight finish.
void run_runtime(Context& ctx);

}  // namespace baetyl::sql
