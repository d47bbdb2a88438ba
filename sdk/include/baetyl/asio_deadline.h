#pragma once
// One coroutine run to its end on an I/O context of its own, within an optional deadline, and the
// sockets it talks over: the request/response exchanges of the HTTP client and of the master's
// Docker client.
#include <chrono>
#include <exception>
#include <functional>
#include <optional>

#include "baetyl/asio_core.h"

namespace baetyl {

// The Unix and TCP sockets of one exchange, kept outside its coroutine so that the deadline's
// callback can close them.
struct ExchangeSockets {
  explicit ExchangeSockets(asio::io_context& io) : unix_socket(io), tcp_socket(io) {}
  void close() {
    error_code ignored;
    unix_socket.close(ignored);
    tcp_socket.close(ignored);
  }
  asio::local::stream_protocol::socket unix_socket;
  asio::ip::tcp::socket tcp_socket;
};

// Runs `task` on `io`, which runs nothing else, until it ends or `deadline` passes; returns its
// result or rethrows what it threw. At the deadline `abort` closes what the task waits on, the
// task is left to unwind, and the result is nullopt.
template <class T>
std::optional<T> run_with_deadline(asio::io_context& io, asio::awaitable<T> task,
                                   std::optional<std::chrono::steady_clock::time_point> deadline,
                                   const std::function<void()>& abort) {
  std::optional<T> result;
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr error, T value) {
    if (error) {
      failure = error;
    } else {
      result = std::move(value);
    }
  });
  if (deadline) {
    io.run_until(*deadline);
  } else {
    io.run();
  }
  if (!result && !failure) {
    abort();
    io.restart();
    io.run();
    return std::nullopt;
  }
  if (failure) std::rethrow_exception(failure);
  return result;
}

}  // namespace baetyl
