// Gradient averaging overlapped with backward: c10d's Reducer, the engine behind PyTorch's
// DistributedDataParallel. Trainable parameters are grouped into buckets in the reverse of their order (the
// order backward produces their gradients); as soon as every gradient of a bucket is ready, the bucket's
// all-reduce starts while backward computes the next layers. When backward ends every rank holds, in .grad, the
// mean over the ranks of what backward accumulated there (earlier micro-steps' gradients included).
//
//   GradSync sync(world, params);     // every rank, same parameters in the same order
//   ... micro-steps without sync: loss.backward() accumulates locally (the hooks stay idle)
//   sync.backward(loss);              // the step's last backward: reduced while it runs
//
// Every rank must call backward in the same step (a rank with nothing to backpropagate uses
// World::all_reduce_sum on its gradients instead, together with every other rank: see
// PreferenceTrainer::train_step).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/world.hpp"

namespace hps::dist {

class GradSync {
 public:
  // PyTorch DDP's defaults: a 1 MiB first bucket (communication starts early) and 25 MiB after.
  static constexpr int64_t kFirstBucketBytes = 1 << 20;
  static constexpr int64_t kBucketBytes = 25 << 20;

  GradSync();  // inactive: backward is a plain backward
  // Inactive without a process group (a plain run). Every parameter must require grad and be used by every
  // synced backward (an unused one is an error at the end of that backward, naming it). `names[i]` names
  // params[i] in errors. On CUDA it calls world.use_device (NCCL where built in).
  GradSync(const World& world, std::vector<at::Tensor> params, std::vector<std::string> names,
           int64_t bucket_bytes = kBucketBytes);
  ~GradSync();
  GradSync(GradSync&&) noexcept;
  GradSync& operator=(GradSync&&) noexcept;

  bool active() const { return impl_ != nullptr; }
  // loss.backward(), the gradients reduced as they are produced (a plain backward in a single process). A
  // failed all-reduce (a rank died, hung past HPS_DIST_TIMEOUT) is an InputError naming this rank.
  void backward(const at::Tensor& loss);
  // Whether `params` are the very tensors the hooks sit on, in the same order.
  bool covers(const std::vector<at::Tensor>& params) const;
  // "3 buckets of <= 25 MiB, overlapped with backward by c10d's Reducer over gloo"
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hps::dist
