#include "dist/grad_sync.hpp"

#include <torch/csrc/distributed/c10d/reducer.hpp>

#include <algorithm>
#include <cstdio>
#include <unordered_map>

#include "dist/world_impl.hpp"

namespace hps::dist {

struct GradSync::Impl {
  std::unique_ptr<c10d::Reducer> reducer;
  std::vector<at::Tensor> params;  // the hooked tensors (shared, not copied)
  int64_t rank = 0, size = 1, buckets = 0, cap = 0;
  std::string backend;
};

GradSync::GradSync() = default;
GradSync::~GradSync() = default;
GradSync::GradSync(GradSync&&) noexcept = default;
GradSync& GradSync::operator=(GradSync&&) noexcept = default;

GradSync::GradSync(const World& world, std::vector<at::Tensor> params, std::vector<std::string> names,
                   int64_t bucket_bytes) {
  if (!world.grouped() || params.empty()) return;
  if (params[0].is_cuda()) world.use_device(params[0].device());
  impl_ = std::make_unique<Impl>();
  impl_->rank = world.rank(), impl_->size = world.size(), impl_->cap = bucket_bytes;
  impl_->params = params;
  impl_->backend = params[0].is_cuda() && world.nccl() ? "nccl" : "gloo";
  // Buckets over the parameters in reverse (the order backward makes their gradients): the bucket that fills
  // first is reduced first. compute_bucket_assignment_by_size orders the buckets by their lowest index.
  const size_t n = params.size();
  std::vector<at::Tensor> reversed(params.rbegin(), params.rend());
  const int64_t first = std::min(kFirstBucketBytes, bucket_bytes);
  auto [assigned, limits] = c10d::compute_bucket_assignment_by_size(
      reversed, {static_cast<size_t>(first), static_cast<size_t>(bucket_bytes)}, std::vector<bool>(n, false));
  for (auto& bucket : assigned)
    for (auto& i : bucket) i = n - 1 - i;
  impl_->buckets = static_cast<int64_t>(assigned.size());
  std::unordered_map<size_t, std::string> param_names;
  for (size_t i = 0; i < n && i < names.size(); ++i) param_names[i] = names[i];
  try {
    impl_->reducer = std::make_unique<c10d::Reducer>(
        std::move(params), std::move(assigned), world.impl_->group, std::vector<bool>(n, false), bucket_bytes,
        /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/false, std::move(param_names),
        first, /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false,
        std::vector<int64_t>{});
  } catch (const std::exception& e) {
    throw InputError("rank " + std::to_string(world.rank()) + " of " + std::to_string(world.size()) +
                     ": cannot set up the gradient all-reduce (c10d Reducer): " + e.what());
  }
}

void GradSync::backward(const at::Tensor& loss) {
  if (!impl_) {
    loss.backward();
    return;
  }
  collective(impl_->rank, impl_->size, "gradient all-reduce", [&] {
    impl_->reducer->prepare_for_backward({loss});
    loss.backward();
  });
}

bool GradSync::covers(const std::vector<at::Tensor>& params) const {
  if (!impl_) return true;
  if (params.size() != impl_->params.size()) return false;
  for (size_t i = 0; i < params.size(); ++i)
    if (!params[i].is_same(impl_->params[i])) return false;
  return true;
}

std::string GradSync::describe() const {
  if (!impl_) return "none (1 process)";
  char cap[32];
  std::snprintf(cap, sizeof cap, "%.3g", static_cast<double>(impl_->cap) / (1 << 20));
  return std::to_string(impl_->buckets) + " bucket" + (impl_->buckets == 1 ? "" : "s") + " of <= " + cap +
         " MiB, overlapped with backward by c10d's Reducer over " + impl_->backend;
}

}  // namespace hps::dist
