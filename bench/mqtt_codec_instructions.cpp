// Runs one 3.1.1 codec path N times, for counting instructions with callgrind (exact where timing
// on a shared machine is not):
//
//   valgrind --tool=callgrind baetyl-mqtt-codec-instructions MODE N
//
// MODE 0: decode() of a QoS 1 PUBLISH (26-byte topic, 16-byte payload); 1: decode_fixed_header()
// + decode_publish() into a PublishView, the hub's read path; 2: encode() of that PUBLISH; 3:
// encode_publish() from its parts, the hub's write path. Subtract a run with N = 0 and divide by
// N for the instructions of one packet (docs/benchmarks-mqtt5-codec.md).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "baetyl/mqtt/codec.h"

int main(int argc, char** argv) {
  using namespace baetyl::mqtt;
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODE(0-3) N\n", argv[0]);
    return 2;
  }
  const int mode = std::atoi(argv[1]);
  const long n = std::atol(argv[2]);
  Publish p;
  p.topic = "baetyl/sensors/temperature";
  p.payload.assign(16, 'x');
  p.qos = 1;
  p.packet_id = 1;
  const Packet packet = p;
  const std::string wire = encode(packet);
  std::string out;
  long sink = 0;  // keeps the work observable
  for (long i = 0; i < n; ++i) {
    if (mode == 0) {
      sink += static_cast<long>(decode(wire).consumed);
    } else if (mode == 1) {
      const HeaderResult head = decode_fixed_header(wire);
      PublishView view;
      sink +=
          static_cast<long>(decode_publish(wire, head.header, view).size() + view.payload.size());
    } else if (mode == 2) {
      out.clear();
      encode(packet, out);
      sink += static_cast<long>(out.size());
    } else {
      out.clear();
      encode_publish(out, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id);
      sink += static_cast<long>(out.size());
    }
  }
  std::printf("%ld\n", sink);
  return 0;
}
