#include <gtest/gtest.h>

#include "judge/stream_watch.hpp"

namespace {

using namespace ocigate::server;

std::shared_ptr<const StreamImage> image(const std::string& key, std::vector<std::string> layers) {
  auto out = std::make_shared<StreamImage>();
  out->key = key;
  for (auto& digest : layers) {
    ocigate::oci::Descriptor d;
    d.digest = std::move(digest);
    out->layers.push_back(std::move(d));
  }
  return out;
}

std::vector<std::string> keys(const std::vector<std::shared_ptr<const StreamImage>>& images) {
  std::vector<std::string> out;
  for (const auto& i : images) out.push_back(i->key);
  std::sort(out.begin(), out.end());
  return out;
}

// prefix + i. (Built by appending: GCC 12 warns falsely, -Wrestrict, on "literal" + std::string.)
std::string numbered(const char* prefix, int i) {
  std::string out = prefix;
  out += std::to_string(i);
  return out;
}

}  // namespace

TEST(StreamWatch, FindsEveryImageThatSharesALayer) {
  StreamWatch watch;
  watch.add(image("a", {"base", "app-a"}));
  watch.add(image("b", {"base", "app-b"}));
  EXPECT_EQ(keys(watch.with_layer("base")), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(keys(watch.with_layer("app-b")), std::vector<std::string>{"b"});
  EXPECT_TRUE(watch.with_layer("unknown").empty());
}

TEST(StreamWatch, RemovingAnImageForgetsItsLayers) {
  StreamWatch watch;
  watch.add(image("a", {"base", "app-a"}));
  watch.add(image("b", {"base"}));
  watch.remove("a");
  EXPECT_FALSE(watch.watching("a"));
  EXPECT_TRUE(watch.with_layer("app-a").empty());
  EXPECT_EQ(keys(watch.with_layer("base")), std::vector<std::string>{"b"});
  watch.remove("a");  // twice is harmless
  EXPECT_EQ(watch.size(), 1u);
}

TEST(StreamWatch, ReAddingAKeyReplacesItsLayers) {
  StreamWatch watch;
  watch.add(image("a", {"old"}));
  watch.add(image("a", {"new"}));
  EXPECT_TRUE(watch.with_layer("old").empty());
  EXPECT_EQ(keys(watch.with_layer("new")), std::vector<std::string>{"a"});
  EXPECT_EQ(watch.size(), 1u);
}

TEST(StreamWatch, ForgetsTheOldestPastItsCapacity) {
  StreamWatch watch(2);
  watch.add(image("a", {"la"}));
  watch.add(image("b", {"lb"}));
  watch.add(image("c", {"lc"}));
  EXPECT_FALSE(watch.watching("a"));
  EXPECT_TRUE(watch.with_layer("la").empty());
  EXPECT_TRUE(watch.watching("b"));
  EXPECT_TRUE(watch.watching("c"));
  EXPECT_EQ(watch.size(), 2u);
}

TEST(StreamWatch, AReAddedImageCountsAsNew) {
  StreamWatch watch(2);
  watch.add(image("a", {"la"}));
  watch.add(image("b", {"lb"}));
  watch.add(image("a", {"la"}));
  watch.add(image("c", {"lc"}));
  EXPECT_TRUE(watch.watching("a"));
  EXPECT_FALSE(watch.watching("b"));
  EXPECT_TRUE(watch.watching("c"));
}

TEST(StreamWatch, StaysBoundedUnderChurn) {
  StreamWatch watch(3);
  for (int i = 0; i < 10000; ++i) {
    watch.add(image(numbered("k", i % 5), {numbered("l", i)}));
    if (i % 2) watch.remove(numbered("k", i % 5));
  }
  EXPECT_LE(watch.size(), 3u);
  EXPECT_EQ(keys(watch.with_layer("l9998")), std::vector<std::string>{"k3"});
}
