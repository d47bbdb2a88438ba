#include "egress_queue.h"

#include <algorithm>

#include "memory.h"

namespace baetyl::hub {
namespace {

// The size of the packet at the front of `packets`: fixed header byte, Remaining Length, body.
// The packets were encoded by the hub, so the header is well formed.
std::size_t packet_size(std::string_view packets) {
  std::size_t remaining = 0;
  std::size_t i = 1;
  for (int shift = 0; i < packets.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(packets[i++]);
    remaining |= static_cast<std::size_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) break;
  }
  return std::min(i + remaining, packets.size());
}

// A queue whose buffers are larger than this gives them back once it is empty.
constexpr std::size_t kKeptEntries = 256;
constexpr std::size_t kKeptBytes = 1024 * 1024;

}  // namespace

std::size_t end_of_packets(std::string_view packets, std::size_t count) {
  std::size_t end = 0;
  for (std::size_t i = 0; i < count && end < packets.size(); ++i) {
    end += packet_size(packets.substr(end));
  }
  return end;
}

std::size_t EgressQueue::size_of(const Outgoing& out) {
  return out.message ? out.message->topic.size() + out.message->payload.size() : 0;
}

void EgressQueue::push(Outgoing out) {
  const std::size_t bytes = size_of(out);
  if (out.qos == 0) {
    ++qos0_;
    qos0_bytes_ += bytes;
  } else {
    ++qos12_;
    qos12_bytes_ += bytes;
  }
  entries_.push_back(Entry{std::move(out), 0, bytes});
}

std::size_t EgressQueue::push_encoded(std::string_view packets, std::size_t count, std::size_t room,
                                      std::size_t room_bytes) {
  std::size_t taken = std::min(count, room);
  std::size_t bytes = 0;
  if (taken == count && packets.size() <= room_bytes) {
    bytes = packets.size();
  } else {
    // Whole packets within both bounds.
    std::size_t fits = 0;
    while (fits < taken && bytes < packets.size()) {
      const std::size_t next = packet_size(packets.substr(bytes));
      if (bytes + next > room_bytes) break;
      bytes += next;
      ++fits;
    }
    taken = fits;
  }
  if (taken == 0) return 0;
  if (encoded_start_ == encoded_.size()) {
    encoded_.clear();
    encoded_start_ = 0;
  }
  encoded_.append(packets.substr(0, bytes));
  if (!empty() && entries_.back().encoded()) {
    entries_.back().packets += taken;
    entries_.back().bytes += bytes;
  } else {
    entries_.push_back(Entry{{}, taken, bytes});
  }
  qos0_ += taken;
  qos0_bytes_ += bytes;
  return taken;
}

void EgressQueue::forget(const Entry& entry) {
  if (entry.out.qos == 0) {
    --qos0_;
    qos0_bytes_ -= entry.bytes;
  } else {
    --qos12_;
    qos12_bytes_ -= entry.bytes;
  }
}

void EgressQueue::pop_front() {
  forget(front());
  pop_entry();
}

void EgressQueue::pop_entry() {
  entries_[head_] = Entry{};
  if (++head_ == entries_.size()) {
    release();
  } else if (head_ >= 64 && head_ * 2 >= entries_.size()) {
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void EgressQueue::release() {
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(head_));
  head_ = 0;
  if (entries_.empty() && entries_.capacity() > kKeptEntries) {
    memory::note_freed(entries_.capacity() * sizeof(Entry));
    std::vector<Entry>().swap(entries_);
  }
}

std::size_t EgressQueue::take_encoded(std::string& out, std::size_t limit) {
  Entry& entry = front();
  if (out.empty() && encoded_start_ == 0 && entry.bytes == encoded_.size() &&
      entry.bytes <= 4 * limit) {
    // All of the buffer: trade it for the caller's (each keeps a buffer of the size it needs).
    const std::size_t count = entry.packets;
    out.swap(encoded_);
    encoded_.clear();
    qos0_ -= count;
    qos0_bytes_ -= entry.bytes;
    pop_entry();
    return count;
  }
  const std::string_view packets = std::string_view(encoded_).substr(encoded_start_, entry.bytes);
  std::size_t bytes = entry.bytes;
  std::size_t count = entry.packets;
  // A run up to a few times the limit goes whole: cutting it costs a look at every packet.
  if (out.size() + bytes > 4 * limit && count > 1) {
    // Whole packets up to the limit, at least one.
    bytes = packet_size(packets);
    count = 1;
    while (count < entry.packets) {
      const std::size_t next = packet_size(packets.substr(bytes));
      if (out.size() + bytes + next > limit) break;
      bytes += next;
      ++count;
    }
  }
  out.append(packets.substr(0, bytes));
  encoded_start_ += bytes;
  qos0_ -= count;
  qos0_bytes_ -= bytes;
  if (count == entry.packets) {
    pop_entry();
  } else {
    entry.packets -= count;
    entry.bytes -= bytes;
  }
  if (encoded_start_ == encoded_.size()) {
    encoded_.clear();
    encoded_start_ = 0;
    if (encoded_.capacity() > kKeptBytes) {  // after a burst
      memory::note_freed(encoded_.capacity());
      encoded_.shrink_to_fit();
    }
  } else if (encoded_start_ > 64 * 1024 && encoded_start_ > encoded_.size() / 2) {
    encoded_.erase(0, encoded_start_);  // a subscriber that falls behind: keep the buffer bounded
    encoded_start_ = 0;
  }
  return count;
}

void EgressQueue::drop_qos0() {
  memory::note_freed(encoded_.capacity());
  const auto first = entries_.begin() + static_cast<std::ptrdiff_t>(head_);
  entries_.erase(std::remove_if(first, entries_.end(),
                                [](const Entry& e) { return e.encoded() || e.out.qos == 0; }),
                 entries_.end());
  if (empty()) release();
  encoded_.clear();
  encoded_.shrink_to_fit();
  encoded_start_ = 0;
  qos0_ = 0;
  qos0_bytes_ = 0;
}

void EgressQueue::clear() {
  std::vector<Entry>().swap(entries_);
  std::string().swap(encoded_);
  head_ = 0;
  encoded_start_ = 0;
  qos0_ = 0;
  qos0_bytes_ = 0;
  qos12_ = 0;
  qos12_bytes_ = 0;
}

std::string_view EgressQueue::encoded_bytes(const Entry& entry) const {
  std::size_t offset = encoded_start_;
  for (const auto& e : entries()) {
    if (&e == &entry) return std::string_view(encoded_).substr(offset, e.bytes);
    if (e.encoded()) offset += e.bytes;
  }
  return {};
}

}  // namespace baetyl::hub
