// derive_seed: one stream per purpose (and index), fixed for a given base, apart for nearby bases.
#include <gtest/gtest.h>

#include <set>

#include "core/seed.hpp"

namespace hps {
namespace {

TEST(DeriveSeed, OneStreamPerPurposeIndexAndBase) {
  static_assert(derive_seed(3, SeedPurpose::slot_draws) == derive_seed(3, SeedPurpose::slot_draws));
  std::set<uint64_t> seen;
  size_t n = 0;
  // Nearby bases × every purpose × a few indices: no two coincide (the old `seed + 7` met `seed' = seed + 6`'s `+ 1`).
  for (uint64_t base = 0; base < 64; ++base)
    for (uint64_t p = 1; p <= static_cast<uint64_t>(SeedPurpose::demo_draws); ++p)
      for (uint64_t i = 0; i < 4; ++i, ++n) seen.insert(derive_seed(base, static_cast<SeedPurpose>(p), i));
  EXPECT_EQ(seen.size(), n);
  EXPECT_NE(derive_seed(0, SeedPurpose::data_order), 0u);
}

}  // namespace
}  // namespace hps
