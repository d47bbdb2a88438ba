#pragma once
// Boost.Asio with its TLS support (links OpenSSL). Plain networking: asio_core.h.
#include "baetyl/asio_core.h"

#include <boost/asio/ssl.hpp>
