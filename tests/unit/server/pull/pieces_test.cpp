// server/pieces: at most max_big_piece_fetches fetches read big pieces at once; the rest, and
// blobs no larger than a small piece, read small ones.
#include "pull/pieces.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace ocigate::server {
namespace {

TEST(BigPieceSlot, OnlySoManyFetchesAtOnceReadBigPieces) {
  std::atomic<unsigned> taken{0};
  std::vector<std::unique_ptr<BigPieceSlot>> slots;
  for (unsigned i = 0; i < max_big_piece_fetches; ++i) {
    slots.push_back(std::make_unique<BigPieceSlot>(taken, true));
    EXPECT_EQ(slots.back()->pieces().size, big_pieces.size);
  }
  BigPieceSlot over(taken, true);
  EXPECT_EQ(over.pieces().size, small_pieces.size);
  EXPECT_EQ(over.pieces().depth, small_pieces.depth);
  EXPECT_EQ(taken.load(), max_big_piece_fetches);
  slots.pop_back();  // a fetch ends: its place is free again
  BigPieceSlot next(taken, true);
  EXPECT_EQ(next.pieces().size, big_pieces.size);
}

TEST(BigPieceSlot, ASmallBlobTakesNoPlace) {
  std::atomic<unsigned> taken{0};
  BigPieceSlot small(taken, false);
  EXPECT_EQ(small.pieces().size, small_pieces.size);
  EXPECT_EQ(taken.load(), 0u);
}

TEST(BigPieceSlot, EveryPlaceIsGivenBack) {
  std::atomic<unsigned> taken{0};
  {
    BigPieceSlot a(taken, true), b(taken, true), c(taken, false);
    EXPECT_EQ(taken.load(), 2u);
  }
  EXPECT_EQ(taken.load(), 0u);
}

}  // namespace
}  // namespace ocigate::server
