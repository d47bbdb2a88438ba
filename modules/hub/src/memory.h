#pragma once
// Giving memory back to the system after large frees. glibc keeps what is freed in its heaps for
// later allocations: after a flood of 32 KB messages to a subscriber that stopped reading, the hub
// stayed at 1.25 GB once the subscriber had left (49 MB after malloc_trim). Code that frees much
// notes it here, and the hub's main thread trims the heaps once enough was freed.
//
// Between those trims glibc keeps a working reserve (keep_working_reserve): left to itself it
// shrinks a heap whose top grew past 128 KB at every large free and maps buffers of 128 KB and
// more on their own, so a subscriber's buffer that grows and shrinks with each burst was faulted
// in again every time (30,000 page faults per 8M QoS 0 deliveries to 4 subscribers).
#include <cstddef>

namespace baetyl::hub::memory {

// Heaps keep up to kTrimThreshold free at their top, and only allocations of kMmapThreshold or
// more get mappings of their own. Called once at start; malloc_trim still gives everything back.
inline constexpr std::size_t kTrimThreshold = 8 * 1024 * 1024;
inline constexpr std::size_t kMmapThreshold = 4 * 1024 * 1024;
void keep_working_reserve();

// Notes `bytes` freed (cheap: counted per thread, added up in steps of 1 MB).
void note_freed(std::size_t bytes);
// The bytes noted so far and not yet trimmed (what threads still hold below 1 MB excluded).
std::size_t freed();
// Returns the free memory of the heaps to the system (malloc_trim) when at least `threshold`
// bytes were noted since the last time; true when it did.
bool trim_if_freed(std::size_t threshold);

}  // namespace baetyl::hub::memory
