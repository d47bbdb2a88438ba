#pragma once
// The single place that includes Boost.Asio. Boost 1.74's asio uses std::exchange without
// including <utility>, which g++ 12 in C++20 mode rejects, so <utility> must come first.
// Without TLS: a binary that includes only this does not load libcrypto (see asio.h for TLS).
#include <utility>

#include <boost/asio.hpp>

namespace baetyl {
namespace asio = boost::asio;
using error_code = boost::system::error_code;
}  // namespace baetyl
