// World's state, shared by world.cpp and grad_sync.cpp (c10d's Reducer runs on the process group); not part
// of the interface: only src/dist/ includes it.
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "dist/world.hpp"

namespace hps::dist {

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
};

}  // namespace hps::dist
