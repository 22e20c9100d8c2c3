// The processes a command runs in: one (the default), or a group launched by torchrun on one or several
// machines, joined over LibTorch's own c10d (TCPStore rendezvous, ProcessGroupGloo). torchrun's contract is
// the interface: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; without WORLD_SIZE every command is
// the plain single-process run it always was.
//
//   torchrun --nproc-per-node=2 --no-python hps train --config run.toml
//
// Collectives run through Gloo on the host; once a command calls use_device(cuda) — the trainers do, at start —
// CUDA tensors go through NCCL where it is built in (HPS_WITH_NCCL: the torch wheel's ProcessGroupNCCL).
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace hps::dist {

struct Launch {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::chrono::seconds timeout{300};  // HPS_DIST_TIMEOUT: a collective waiting longer than this fails (a dead rank)
};

// torchrun's variables, or nullopt when WORLD_SIZE is unset (a plain run). ConfigError naming the variable
// for a malformed or inconsistent value (RANK ≥ WORLD_SIZE, a port outside 1..65535, …).
std::optional<Launch> launch_from_env();
// The same from a lookup (tests): `get(name)` returns the variable or nullptr.
std::optional<Launch> launch_from(const std::function<const char*(const char*)>& get);

class World {
 public:
  World();  // a single process: every collective is the identity
  // Joins the group: rank 0 hosts the TCPStore at master_addr:master_port, every rank waits for all
  // (InputError naming the address and rank when the rendezvous fails or times out).
  explicit World(const Launch& l);
  ~World();
  World(World&&) noexcept;
  World& operator=(World&&) noexcept;

  int64_t rank() const { return rank_; }
  int64_t size() const { return size_; }
  int64_t local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }
  // Joined a launch's process group — of any size: torchrun with one process runs the gradient all-reduce
  // (on one rank) as PyTorch's DDP does, which is how its cost is measured; every other collective of a
  // 1-process group is the identity.
  bool grouped() const;

  // Element-wise sums over the ranks, in place; tensors of any device and floating dtype.
  void all_reduce_sum(std::vector<at::Tensor>& tensors) const;
  std::vector<double> sum(std::vector<double> values) const;
  bool any(bool flag) const;  // true on every rank when it is true on one
  // Every rank's `text`, in rank order, on every rank.
  std::vector<std::string> gather(const std::string& text) const;
  // Rank `root`'s tensors on every rank, in place.
  void broadcast(std::vector<at::Tensor>& tensors, int64_t root = 0) const;
  void barrier() const;
  // Collectives on `device`'s tensors from now on: for CUDA, a ProcessGroupNCCL on that device when hps was
  // built with NCCL (else Gloo through the host). A collective itself: every rank calls it at the same point.
  void use_device(at::Device device) const;
  bool nccl() const;  // CUDA tensors reduce through NCCL
  // ConfigError on every rank when some rank's `text` differs from rank 0's (compared by a 64-bit FNV-1a
  // hash): `what` names it ("the effective config").
  void check_same(const std::string& what, const std::string& text) const;
  // `log` on rank 0; elsewhere a stream that drops everything (progress is printed once per group).
  std::ostream& main_log(std::ostream& log) const;
  // "2 processes (rank 0 of 2, local rank 0), gloo over c10d, rendezvous 127.0.0.1:29500" (", nccl for CUDA")
  std::string describe() const;

 private:
  friend class GradSync;  // runs c10d's Reducer on the process group
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t rank_ = 0, size_ = 1, local_rank_ = 0;
};

// The device a process uses for `spec`: in a process group, "cuda" (no index) is cuda:LOCAL_RANK — one GPU per
// process, as torchrun lays them out; anything else as given.
at::Device local_device(const std::string& spec);

// The process's world: single until the CLI joins the launch's group at start (init_from_env).
const World& world();
// Joins the group torchrun describes (once; a no-op without WORLD_SIZE) and returns it.
const World& init_from_env();

}  // namespace hps::dist
