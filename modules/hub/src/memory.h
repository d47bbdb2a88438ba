#pragma once
// Giving memory back to the system after large frees. glibc keeps what is freed in its heaps for
// later allocations: after a flood of 32 KB messages to a subscriber that stopped reading, the hub
// stayed at 1.25 GB once the subscriber had left (49 MB after malloc_trim). Code that frees much
// notes it here, and the hub's main thread trims the heaps once enough was freed.
#include <cstddef>

namespace baetyl::hub::memory {

// Notes `bytes` freed (cheap: counted per thread, added up in steps of 1 MB).
void note_freed(std::size_t bytes);
// The bytes noted so far and not yet trimmed (what threads still hold below 1 MB excluded).
std::size_t freed();
// Returns the free memory of the heaps to the system (malloc_trim) when at least `threshold`
// bytes were noted since the last time; true when it did.
bool trim_if_freed(std::size_t threshold);

}  // namespace baetyl::hub::memory
