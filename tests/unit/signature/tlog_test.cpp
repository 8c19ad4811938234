// Transparency log pieces: RFC 6962 inclusion proofs, signed checkpoints, the SET payload.

#include <gtest/gtest.h>

#include <limits>

#include "keyless_helpers.hpp"

namespace {

using namespace ocigate::signature;
using namespace ocigate::signature::test;

std::vector<std::string> leaves(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back("leaf " + std::to_string(i));
  return out;
}

}  // namespace

TEST(MerkleTree, EveryLeafOfEveryTreeUpTo33ProvesItsInclusion) {
  for (std::size_t size = 1; size <= 33; ++size) {
    auto data = leaves(size);
    std::string root = tree_root(data, 0, size);
    for (std::size_t i = 0; i < size; ++i) {
      auto proof = tree_path(data, i, 0, size);
      EXPECT_TRUE(verify_inclusion(i, size, merkle_leaf_hash(data[i]), proof, root)) << i << " of " << size;
      // The same proof for the neighbour, or for another leaf, does not hold.
      if (i + 1 < size) {
        EXPECT_FALSE(verify_inclusion(i + 1, size, merkle_leaf_hash(data[i]), proof, root)) << i << " of " << size;
      }
      EXPECT_FALSE(verify_inclusion(i, size, merkle_leaf_hash("another leaf"), proof, root)) << i << " of " << size;
    }
  }
}

TEST(MerkleTree, RefusesOutOfRangeIndexesAndMalformedHashes) {
  auto data = leaves(4);
  std::string root = tree_root(data, 0, 4);
  auto proof = tree_path(data, 1, 0, 4);
  EXPECT_FALSE(verify_inclusion(4, 4, merkle_leaf_hash(data[1]), proof, root));
  EXPECT_FALSE(verify_inclusion(0, 0, merkle_leaf_hash(data[1]), proof, root));
  proof.push_back(std::string(32, 'x'));  // one hash too many
  EXPECT_FALSE(verify_inclusion(1, 4, merkle_leaf_hash(data[1]), proof, root));
  EXPECT_FALSE(verify_inclusion(1, 4, merkle_leaf_hash(data[1]), {std::string(31, 'x')}, root));
  EXPECT_TRUE(verify_inclusion(0, 1, merkle_leaf_hash(data[0]), {}, tree_root(data, 0, 1)));
}

TEST(MerkleTree, HashesAreRfc6962Prefixed) {
  EXPECT_EQ(merkle_leaf_hash(""), sha256_bytes(std::string(1, '\0')));
  EXPECT_EQ(merkle_node_hash("a", "b"), sha256_bytes("\x01" "ab"));
}

TEST(SetPayload, IsTheCanonicalJsonRekorSigns) {
  TlogEntry entry;
  entry.body = "{\"kind\":\"x\"}";
  entry.integrated_time = 1692374735;
  entry.log_index = 31821305;
  entry.log_id = std::string("\xc0\xd2", 2);
  EXPECT_EQ(set_payload(entry),
            "{\"body\":\"eyJraW5kIjoieCJ9\",\"integratedTime\":1692374735,\"logID\":\"c0d2\",\"logIndex\":31821305}");
}

class Checkpoints : public ::testing::Test {
 protected:
  KeylessFixtures f;
  std::shared_ptr<const TrustedRoot> root = root_of(f);
  TlogEntry entry = f.log_entry("{\"apiVersion\":\"0.0.1\",\"kind\":\"hashedrekord\",\"spec\":{}}", f.now, SignOptions{});
};

TEST_F(Checkpoints, ASignedCheckpointVerifiesWithTheLogKey) {
  auto cp = verify_checkpoint(entry.proof->checkpoint, root->tlogs.front());
  ASSERT_TRUE(cp.ok()) << cp.error().message;
  EXPECT_EQ(cp->origin, "rekor.test - 4242");
  EXPECT_EQ(cp->size, static_cast<std::uint64_t>(entry.proof->tree_size));
  EXPECT_EQ(cp->root_hash, entry.proof->root_hash);
  EXPECT_TRUE(verify_tlog_entry(entry, root->tlogs.front()).ok());
}

TEST_F(Checkpoints, AChangedNoteDoesNotVerify) {
  std::string note = entry.proof->checkpoint;
  note[note.find('\n') + 1] ^= 0x01;  // the tree size line
  auto cp = verify_checkpoint(note, root->tlogs.front());
  ASSERT_FALSE(cp.ok());
  EXPECT_NE(cp.error().message.find("does not verify"), std::string::npos) << cp.error().message;
}

TEST_F(Checkpoints, MalformedNotesAreRefusedWithAReason) {
  for (const std::string& note : {std::string(""), std::string("origin\n1\nAAAA\n"), std::string("origin\n1\nAAAA\n\nno dash\n"),
                                 std::string("origin\n1\nAAAA\n\n\xe2\x80\x94 name AA==\n"),
                                 std::string("origin\n1\nAAAA\n\n\xe2\x80\x94 name AAAAAAAA")}) {
    auto cp = verify_checkpoint(note, root->tlogs.front());
    EXPECT_FALSE(cp.ok()) << note;
  }
}

TEST_F(Checkpoints, AnEntryWithoutSetHasNoVerifiedTime) {
  entry.signed_entry_timestamp.clear();
  auto status = verify_tlog_entry(entry, root->tlogs.front());
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().message.find("Rekor v2"), std::string::npos) << status.error().message;
}

TEST_F(Checkpoints, AnIntegratedTimeChangedAfterSigningBreaksTheSet) {
  entry.integrated_time -= 3600;  // an attacker backdating into the certificate's window
  EXPECT_FALSE(verify_tlog_entry(entry, root->tlogs.front()).ok());
}

TEST_F(Checkpoints, AnImpossibleIntegratedTimeSignedByTheLogIsRefused) {
  // Found by fuzz_certificate for SCTs: a 64-bit time overflowed system_clock's nanoseconds.
  for (std::int64_t t : {std::numeric_limits<std::int64_t>::max(), std::int64_t{-1}, std::int64_t{9'000'000'000}}) {
    entry.integrated_time = t;
    f.sign_set(entry);
    auto status = verify_tlog_entry(entry, root->tlogs.front());
    ASSERT_FALSE(status.ok()) << t;
    EXPECT_NE(status.error().message.find("outside the validity of log"), std::string::npos) << status.error().message;
  }
}
