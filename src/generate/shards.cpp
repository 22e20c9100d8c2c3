#include "generate/shards.hpp"

#include <cstdio>
#include <fstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace hps::generate {

Range shard_range(int64_t total, int64_t unit, int64_t rank, int64_t ranks) {
  const int64_t units = (total + unit - 1) / unit;
  return {std::min(total, rank * units / ranks * unit), std::min(total, (rank + 1) * units / ranks * unit)};
}

std::string part_path(const std::string& out, int64_t rank, int64_t ranks) {
  return out + ".part-" + std::to_string(rank) + "-of-" + std::to_string(ranks);
}

bool join_parts(const std::string& out, bool complete, const dist::World& w, std::ostream& log) {
  w.barrier();  // every part written (and, in place, every rank done reading the input)
  const bool all = !w.any(!complete);
  if (all && w.is_main()) {
    io::write_file_atomic(out, [&](std::ostream& o) {
      for (int64_t r = 0; r < w.size(); ++r) {
        const std::string part = part_path(out, r, w.size());
        std::ifstream in(part, std::ios::binary);
        if (!in) throw InputError(part + ": missing (every rank must see the same folder)");
        // An empty part (a rank with no whole unit) inserts nothing: `o << rdbuf` would then set failbit.
        if (in.peek() != std::ifstream::traits_type::eof()) o << in.rdbuf();
      }
    });
    for (int64_t r = 0; r < w.size(); ++r)
      std::remove(part_path(out, r, w.size()).c_str());
    log << "joined " << w.size() << " parts into " << out << "\n";
  } else if (!all) {
    log << "some ranks stopped early: their parts (" << out << ".part-*) are kept; rerun to continue\n";
  }
  w.barrier();
  return all;
}

}  // namespace hps::generate
