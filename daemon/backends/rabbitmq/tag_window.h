// TagWindow: records keyed by the delivery tags of one AMQP channel.
//
// The broker numbers a channel's deliveries 1, 2, 3, ... and the ones not
// yet settled are a window of recent tags (about the prefetch window), so
// the records sit in a ring indexed by tag: finding, adding and removing one
// is an index, with no allocation and no tree to rebalance. A record that a
// full ring leaves behind (a delivery held while many after it were settled)
// moves to a small ordered map, so a slow handler never makes the ring grow.
//
// T must be default-constructible and movable, and have Reset(), which
// clears a record for reuse (a ring slot keeps its record, so strings keep
// their capacity).
//
// Not thread-safe: the connection thread only.
#ifndef FOXWORKER_BACKENDS_RABBITMQ_TAG_WINDOW_H_
#define FOXWORKER_BACKENDS_RABBITMQ_TAG_WINDOW_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace foxworker {

template <typename T>
class TagWindow {
 public:
  // Makes room for a window of at least `capacity` tags (rounded up to a
  // power of two); never shrinks.
  void Reserve(size_t capacity) {
    size_t cap = 16;
    while (cap < capacity) cap *= 2;
    if (cap <= ring_.size()) return;
    std::vector<Slot> ring(cap);
    for (uint64_t t = base_; t < next_; ++t) {
      Slot& from = ring_[t & mask_];
      if (from.tag != t) continue;
      Slot& to = ring[t & (cap - 1)];
      to.tag = t;
      to.value = std::move(from.value);
    }
    ring_.swap(ring);
    mask_ = cap - 1;
  }

  size_t size() const { return in_ring_ + overflow_.size(); }
  bool empty() const { return size() == 0; }

  // The record of `tag`, or nullptr.
  T* Find(uint64_t tag) {
    if (InRing(tag)) return &ring_[tag & mask_].value;
    auto it = overflow_.find(tag);
    return it == overflow_.end() ? nullptr : &it->second;
  }

  // Adds `tag` and returns its record (in the state Reset() leaves); an
  // existing record of `tag` is returned as it is.
  T& Insert(uint64_t tag) {
    if (T* existing = Find(tag)) return *existing;
    if (ring_.empty()) Reserve(16);
    if (in_ring_ == 0 && tag >= next_) base_ = next_ = tag;
    if (tag < next_) {
      // Below the newest tag: never from a broker, which numbers deliveries
      // in order; kept in the ring when its slot is in the window.
      if (tag < base_) return overflow_[tag];
      return Place(tag);
    }
    // The window [base_, tag] must fit in the ring: the oldest records move
    // to the overflow map.
    while (tag - base_ > mask_) {
      Slot& s = ring_[base_ & mask_];
      if (s.tag == base_) {
        overflow_.emplace(base_, std::move(s.value));
        s.value.Reset();
        s.tag = 0;
        --in_ring_;
      }
      ++base_;
      SkipFreeSlots();
      if (in_ring_ == 0) {
        base_ = tag;
        break;
      }
    }
    next_ = tag + 1;
    return Place(tag);
  }

  // Removes `tag`; false when it is not there.
  bool Erase(uint64_t tag) {
    if (InRing(tag)) {
      Slot& s = ring_[tag & mask_];
      s.tag = 0;
      s.value.Reset();
      --in_ring_;
      if (tag == base_) SkipFreeSlots();
      return true;
    }
    return overflow_.erase(tag) > 0;
  }

  // The lowest tag above `tag` (0 for the lowest of all), or 0 when none.
  uint64_t NextAbove(uint64_t tag) const {
    uint64_t best = 0;
    auto it = overflow_.upper_bound(tag);
    if (it != overflow_.end()) best = it->first;
    for (uint64_t t = std::max(tag + 1, base_); t < next_ && (best == 0 || t < best); ++t)
      if (ring_[t & mask_].tag == t) return t;
    return best;
  }
  uint64_t Lowest() const { return NextAbove(0); }

  void Clear() {
    for (uint64_t t = base_; t < next_ && in_ring_ > 0; ++t) {
      Slot& s = ring_[t & mask_];
      if (s.tag != t) continue;
      s.tag = 0;
      s.value.Reset();
      --in_ring_;
    }
    overflow_.clear();
    in_ring_ = 0;
    base_ = next_ = 0;
  }

 private:
  struct Slot {
    uint64_t tag = 0;  // 0: free
    T value;
  };

  bool InRing(uint64_t tag) const {
    return tag != 0 && tag >= base_ && tag < next_ && ring_[tag & mask_].tag == tag;
  }

  T& Place(uint64_t tag) {
    Slot& s = ring_[tag & mask_];
    s.tag = tag;
    ++in_ring_;
    return s.value;
  }

  // Moves base_ up to the lowest tag in the ring (next_ when none).
  void SkipFreeSlots() {
    while (base_ < next_ && ring_[base_ & mask_].tag != base_) ++base_;
  }

  // Every tag in the ring is in [base_, next_), and next_ - base_ <= size.
  std::vector<Slot> ring_;
  uint64_t mask_ = 0;
  uint64_t base_ = 0;
  uint64_t next_ = 0;
  size_t in_ring_ = 0;
  // Tags below base_ (and strays); small: at most the deliveries held
  // while a ring's worth of later ones were settled.
  std::map<uint64_t, T> overflow_;
};

}  // namespace foxworker

#endif  // FOXWORKER_BACKENDS_RABBITMQ_TAG_WINDOW_H_
