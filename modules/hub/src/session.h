#pragma once
// The state of one client session: its subscriptions, the messages waiting for it, the ones sent
// but not yet acknowledged, and the connection currently attached (if any). Shared between the
// publishers' threads (which queue messages) and the connection serving it; guarded by `mutex`.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "egress_queue.h"
#include "message.h"

namespace baetyl::hub {

class Authorizer;
class Connection;

struct Inflight {
  Outgoing out;
  bool released = false;  // QoS 2: PUBREC received, PUBREL sent
  std::uint64_t order = 0;
  std::chrono::steady_clock::time_point sent;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::string client_id, bool persistent)
      : client_id_(std::move(client_id)), persistent_(persistent) {}

  const std::string& client_id() const { return client_id_; }
  bool persistent() const { return persistent_; }

  // The members are ordered so that the small ones fill the gaps the alignment of the others
  // leaves: an idle connection's session is a third of the hub's memory per connection.
 private:
  std::string client_id_;
  // See add_incoming_qos2(): made by the first QoS 2 message received (few clients send any).
  std::unique_ptr<std::set<std::uint16_t>> incoming_qos2_;
  bool persistent_;

 public:
  // Set with `principal` (see there).
  bool unclaimed = false;
  // The protocol of the connection attached last (MQTT 5 deliveries carry properties), and its
  // MQTT 5 Maximum Packet Size (0: none): read by publishers without the mutex. Broker::match
  // keeps `v5`, `encode_at_write` and whether `maximum_packet_size` is 0 with its results: a
  // change of any calls Broker::protocol_changed().
  std::atomic<bool> v5{false};
  // Its QoS 0 messages are encoded by its connection's writer, not once by the publisher: the
  // writer adds per-connection state (MQTT 5 topic aliases towards the client).
  std::atomic<bool> encode_at_write{false};
  // A connection is attached (set with `connection`): shared subscriptions pick online members.
  std::atomic<bool> online{false};
  std::atomic<bool> page_ready{false};  // a page-in may read (see `paging` below)
  // Guarded by `mutex`: these, and everything from `mutex` on.
  bool identified = false;  // some subscription has a Subscription Identifier
  bool resend = false;      // a new connection must resend everything in flight first
  // Back-pressure on publishers (Broker::keep_waiting_for): whether this queue failed to drain
  // in time (nobody waits for it again until it does), and since when publishers wait for it.
  bool stalled = false;
  // A persistent session keeps at most its queue bounds of stored deliveries in memory, and none
  // while offline; the others stay in the store only and are read back as the queue drains
  // (Broker::page_in).
  bool stored_only = false;  // some stored deliveries are in the store only:
  bool paging = false;       // a page-in was asked for and is not done yet
  std::uint16_t next_packet_id = 1;
  std::atomic<std::uint32_t> maximum_packet_size{0};
  // A persistent session's Session Expiry Interval in seconds (kNeverExpires: never), and while
  // no connection is attached, when it ends (`expires_at`).
  std::uint32_t expiry_interval = kNeverExpires;

  // The principal the session belongs to and its permissions (null when no principal is known:
  // in tests, or when it left the configuration). Set before the session has a subscription and
  // then read by publishers under the broker's subscription lock. `unclaimed`: restored from a
  // store that did not record principals; the first principal to resume it claims it.
  std::string principal;
  std::shared_ptr<const Authorizer> authorizer;

  std::mutex mutex;
  std::map<std::string, Subscribed, std::less<>> subscriptions;
  std::chrono::steady_clock::time_point expires_at = std::chrono::steady_clock::time_point::max();
  EgressQueue pending;
  std::map<std::uint16_t, Inflight> inflight;
  std::uint64_t next_order = 0;
  std::weak_ptr<Connection> connection;
  std::int64_t paged_until = 0;          // (those of message ids above this one)
  std::uint64_t skipped = 0;             // deliveries left in the store only, ever
  std::uint64_t skipped_at_request = 0;  // ... when the page-in was asked for
  std::int64_t lowest_skip = 0;          // the lowest message id left since then (0: none)
  std::chrono::steady_clock::time_point congestion_since{};
  // Warnings about this queue (full, stalled) are logged at most once per Broker::kWarnInterval.
  std::chrono::steady_clock::time_point drop_warned_at{};
  std::chrono::steady_clock::time_point stall_warned_at{};
  std::uint64_t dropped_unlogged = 0;  // drops since the last warning

  // The ids of QoS 2 messages received and awaiting PUBREL (call with `mutex` held): adding one
  // already there returns false.
  bool add_incoming_qos2(std::uint16_t id) {
    if (!incoming_qos2_) incoming_qos2_ = std::make_unique<std::set<std::uint16_t>>();
    return incoming_qos2_->insert(id).second;
  }
  // Whether `id` was there.
  bool remove_incoming_qos2(std::uint16_t id) {
    return incoming_qos2_ && incoming_qos2_->erase(id) > 0;
  }

  // A packet id not in flight; call with `mutex` held and inflight.size() < 65535.
  std::uint16_t allocate_packet_id() {
    while (true) {
      std::uint16_t id = next_packet_id++;
      if (next_packet_id == 0) next_packet_id = 1;
      if (id != 0 && !inflight.contains(id)) return id;
    }
  }
};

}  // namespace baetyl::hub
