#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  at::set_num_threads(1);  // tests run in parallel under ctest; keep each single-threaded
  return RUN_ALL_TESTS();
}
