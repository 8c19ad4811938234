#pragma once
// The buffers a cold fetch reads the upstream into; each piece is hashed on the pool while the next
// is read (piped_hash.hpp). Big pieces (1 MiB, two of them) cost a cold stream ~20% less CPU than
// small ones (256 KiB, three): fewer reads, writes, hash hand-offs and follower wake-ups per byte
// (bench/README.md, "Cold blob"). They take 2 MiB a fetch, so only max_big_piece_fetches fetches at
// once get them: the gate fetches every layer of an image at once, and 100 layers must not cost
// 200 MiB.

#include <atomic>
#include <cstddef>

namespace ocigate::server {

struct Pieces {
  std::size_t size;
  std::size_t depth;  // pieces read ahead of the hash
};

inline constexpr Pieces big_pieces{1024 * 1024, 2};
inline constexpr Pieces small_pieces{256 * 1024, 3};
inline constexpr unsigned max_big_piece_fetches = 8;

// A place among the fetches that read big pieces, held for one fetch. wanted: the blob is larger
// than a small piece (or of unknown size); a smaller one takes no place.
class BigPieceSlot {
 public:
  BigPieceSlot(std::atomic<unsigned>& taken, bool wanted) : taken_(taken) {
    if (!wanted) return;
    unsigned now = taken_.load();
    while (now < max_big_piece_fetches) {
      if (taken_.compare_exchange_weak(now, now + 1)) {
        held_ = true;
        return;
      }
    }
  }
  ~BigPieceSlot() {
    if (held_) --taken_;
  }
  BigPieceSlot(const BigPieceSlot&) = delete;
  BigPieceSlot& operator=(const BigPieceSlot&) = delete;

  Pieces pieces() const { return held_ ? big_pieces : small_pieces; }

 private:
  std::atomic<unsigned>& taken_;
  bool held_ = false;
};

}  // namespace ocigate::server
