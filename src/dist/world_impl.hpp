// World's state, shared by world.cpp and grad_sync.cpp (c10d's Reducer runs on the process group); not part
// of the interface: only src/dist/ includes it.
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "dist/world.hpp"

namespace hps::dist {

// Runs a collective, naming the rank and the peers' likely fate when it fails (a dead rank shows as a
// timeout or a closed connection).
template <typename F>
void collective(int64_t rank, int64_t size, const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    throw InputError("rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " + what +
                     " failed (another rank died, hung or disagrees on the run): " + e.what());
  }
}

struct World::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;  // CPU tensors; CUDA ones too until use_device makes NCCL
  c10::intrusive_ptr<c10d::Backend> nccl;           // CUDA tensors, once use_device(cuda) created it
  c10::intrusive_ptr<c10d::ProcessGroup> group;     // both, dispatched by the tensors' device (the Reducer's)
  Launch launch;

  // NCCL for CUDA tensors when use_device made it; Gloo for the rest.
  c10::intrusive_ptr<c10d::Backend> backend_for(const at::Tensor& t) const {
    if (t.is_cuda() && nccl) return nccl;
    return gloo;
  }
  // Every tensor on one CUDA device and NCCL made for it: reduce on the device, not through the host.
  bool on_nccl(const std::vector<at::Tensor>& tensors) const {
    if (!nccl) return false;
    for (const auto& t : tensors)
      if (!t.is_cuda() || t.device() != tensors[0].device()) return false;
    return true;
  }
};

}  // namespace hps::dist
