#pragma once
// The deliveries waiting for one session's connection, in the order they were queued.
//
// QoS 1/2 deliveries (and retained messages sent on subscribe) wait as Outgoing entries holding
// the shared message: they get a packet id when sent and stay in flight until acknowledged.
// QoS 0 deliveries wait as the PUBLISH packets the publisher's thread encoded, consecutive ones in
// one entry over a byte buffer. The subscriber's writer then copies bytes in order instead of
// following a pointer per message into memory another core just wrote, and a QoS 0 message needs
// no shared copy at all.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "message.h"

namespace baetyl::hub {

struct Outgoing {
  MessagePtr message;
  std::uint8_t qos = 0;   // delivery QoS: min(message, subscription)
  bool retain = false;    // set only for retained messages sent on subscribe
  bool dup = false;       // sent before (restored from the store)
  bool stored = false;    // has a queue entry in the store to delete on acknowledgement
  bool released = false;  // QoS 2 restored after PUBREC: send PUBREL, not the message
  // The shared subscription group (Broker's id) it was delivered for, else 0: another member
  // gets it if this session goes away before acknowledging it.
  std::uint16_t share = 0;
};

class EgressQueue {
 public:
  struct Entry {
    Outgoing out;             // the delivery, when `packets` is 0
    std::size_t packets = 0;  // else this many encoded QoS 0 PUBLISH packets,
    std::size_t bytes = 0;    // of this many bytes, next in the buffer (a delivery: its size_of)
    bool encoded() const { return packets > 0; }
  };

  bool empty() const { return head_ == entries_.size(); }
  // QoS 0 deliveries waiting, encoded or not, and their bytes (packets, or topic and payload).
  std::size_t qos0() const { return qos0_; }
  std::size_t qos0_bytes() const { return qos0_bytes_; }
  // QoS 1/2 deliveries waiting (not in flight), and the bytes of their topics and payloads.
  std::size_t qos12() const { return qos12_; }
  std::size_t qos12_bytes() const { return qos12_bytes_; }

  void push(Outgoing out);
  // Queues the first `room` (at most) of the `count` whole PUBLISH packets in `packets`, and no
  // more than `room_bytes` of them; returns how many were queued.
  std::size_t push_encoded(std::string_view packets, std::size_t count, std::size_t room,
                           std::size_t room_bytes = SIZE_MAX);

  Entry& front() { return entries_[head_]; }
  // Removes the front entry, which must not be encoded (see take_encoded).
  void pop_front();
  // Appends the front entry's packets to `out`: all of them when `out` stays within four times
  // `limit` bytes, else whole packets while it stays within `limit` (at least one). Removes the
  // entry once all of it was taken. Returns the packets taken.
  std::size_t take_encoded(std::string& out, std::size_t limit);

  // Forgets every QoS 0 delivery (a session going offline keeps only QoS 1 and 2).
  void drop_qos0();
  // Forgets everything queued and gives its memory back (assigning an empty queue would keep the
  // buffer's capacity: a moved-into std::string keeps its own buffer).
  void clear();
  // Removes the Outgoing entries for which `remove(const Outgoing&)` holds.
  template <class Predicate>
  void erase_outgoing_if(Predicate remove) {
    const auto first = entries_.begin() + static_cast<std::ptrdiff_t>(head_);
    entries_.erase(std::remove_if(first, entries_.end(),
                                  [&](const Entry& e) {
                                    if (e.encoded() || !remove(e.out)) return false;
                                    forget(e);
                                    return true;
                                  }),
                   entries_.end());
    if (empty()) release();
  }
  std::span<const Entry> entries() const { return std::span(entries_).subspan(head_); }
  // The packets of an encoded entry, while it is queued.
  std::string_view encoded_bytes(const Entry& entry) const;

  // The bytes a delivery counts for in the queue's bounds: its topic and payload.
  static std::size_t size_of(const Outgoing& out);

 private:
  // The counts of a delivery leaving the queue (its `out` may have been moved from).
  void forget(const Entry& entry);
  void pop_entry();
  void release();  // the queue is empty: gives back a large buffer

  // From head_ on: a vector, not a deque, because an empty deque already holds 576 bytes (an
  // idle connection's session has an empty queue).
  std::vector<Entry> entries_;
  std::size_t head_ = 0;
  std::string encoded_;           // the encoded entries' packets, oldest first,
  std::size_t encoded_start_ = 0;  // from here (what is before was taken)
  std::size_t qos0_ = 0;
  std::size_t qos0_bytes_ = 0;
  std::size_t qos12_ = 0;
  std::size_t qos12_bytes_ = 0;
};

// The end of the `count`-th whole PUBLISH packet in `packets` (or the end of `packets`).
std::size_t end_of_packets(std::string_view packets, std::size_t count);

}  // namespace baetyl::hub
