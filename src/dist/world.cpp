#include "dist/world.hpp"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef HPS_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "dist/world_impl.hpp"

namespace hps::dist {

namespace {

int64_t env_int(const std::function<const char*(const char*)>& get, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* v = get(name);
  if (v == nullptr) return fallback;
  int64_t x = 0;
  const std::string s(v);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
  if (ec != std::errc() || end != s.data() + s.size() || x < lo || x > hi)
    throw ConfigError("environment variable " + std::string(name) + "='" + s + "': expected an integer in [" +
                      std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

}  // namespace

std::optional<Launch> launch_from(const std::function<const char*(const char*)>& get) {
  if (get("WORLD_SIZE") == nullptr) return std::nullopt;
  Launch l;
  l.world_size = env_int(get, "WORLD_SIZE", 1, 1, 1 << 20);
  l.rank = env_int(get, "RANK", -1, 0, l.world_size - 1);
  if (l.rank < 0) throw ConfigError("WORLD_SIZE is set but RANK is not (launch with torchrun, or set both)");
  l.local_rank = env_int(get, "LOCAL_RANK", l.rank, 0, l.world_size - 1);
  if (const char* a = get("MASTER_ADDR")) l.master_addr = a;
  if (l.master_addr.empty()) throw ConfigError("environment variable MASTER_ADDR is empty");
  l.master_port = env_int(get, "MASTER_PORT", l.master_port, 1, 65535);
  l.timeout = std::chrono::seconds(env_int(get, "HPS_DIST_TIMEOUT", l.timeout.count(), 1, 86400));
  return l;
}

std::optional<Launch> launch_from_env() {
  return launch_from([](const char* name) { return std::getenv(name); });
}

World::World() = default;
World::~World() = default;
World::World(World&&) noexcept = default;
World& World::operator=(World&&) noexcept = default;

World::World(const Launch& l) : impl_(std::make_unique<Impl>()), rank_(l.rank), size_(l.world_size), local_rank_(l.local_rank) {
  impl_->launch = l;
  const std::string where = l.master_addr + ":" + std::to_string(l.master_port);
  try {
    // torchrun's agent may already host the store at MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE):
    // then every rank is a client under the agent's per-attempt prefix, as torch.distributed does.
    const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
    const bool agent_store = agent != nullptr && std::string(agent) == "True";
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(l.master_port);
    so.isServer = !agent_store && l.rank == 0;
    so.numWorkers = static_cast<size_t>(l.world_size);
    so.waitWorkers = !agent_store;
    so.timeout = l.timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(l.master_addr, so);
    if (agent_store) {
      const char* attempt = std::getenv("TORCHELASTIC_RESTART_COUNT");
      impl_->store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::string(attempt ? attempt : "0"), tcp);
    } else {
      impl_->store = tcp;
    }
    auto opts = c10d::ProcessGroupGloo::Options::create();
    opts->timeout = l.timeout;
    // GLOO_SOCKET_IFNAME picks the interface on multi-homed machines, as in PyTorch.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    opts->devices.push_back(ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(l.rank),
                                                              static_cast<int>(l.world_size), opts);
    // The group the Reducer all-reduces through: Gloo for every device until use_device adds NCCL for CUDA.
    impl_->group = c10::make_intrusive<c10d::ProcessGroup>(impl_->store, static_cast<int>(l.rank),
                                                           static_cast<int>(l.world_size));
    for (auto type : {c10::DeviceType::CPU, c10::DeviceType::CUDA})
      impl_->group->setBackend(type, c10d::ProcessGroup::GLOO, impl_->gloo);
    impl_->group->setDefaultBackend(c10d::ProcessGroup::GLOO);
  } catch (const std::exception& e) {
    throw InputError("rank " + std::to_string(l.rank) + " of " + std::to_string(l.world_size) +
                     ": cannot join the process group at " + where + " (MASTER_ADDR:MASTER_PORT): " + e.what());
  }
}

namespace {

// Runs `op` on one flat buffer per dtype holding `tensors` (one collective per dtype rather than one per
// tensor: c10d's coalescing), then copies the results back into them. The buffer is on the host (Gloo) unless
// `on_device` (NCCL: CUDA tensors reduce where they are).
template <typename Op>
void coalesced(std::vector<at::Tensor>& tensors, bool on_device, Op&& op) {
  std::map<at::ScalarType, std::vector<size_t>> by_type;
  for (size_t i = 0; i < tensors.size(); ++i) by_type[tensors[i].scalar_type()].push_back(i);
  for (const auto& [type, idx] : by_type) {
    std::vector<at::Tensor> flat;
    for (size_t i : idx) {
      const at::Tensor t = tensors[i].detach();
      flat.push_back((on_device ? t : t.to(at::kCPU)).contiguous().view(-1));
    }
    std::vector<at::Tensor> buf{at::cat(flat)};
    op(buf);
    int64_t off = 0;
    for (size_t i : idx) {
      const int64_t n = tensors[i].numel();
      tensors[i].detach().copy_(buf[0].narrow(0, off, n).view(tensors[i].sizes()));
      off += n;
    }
  }
}

}  // namespace

void World::all_reduce_sum(std::vector<at::Tensor>& tensors) const {
  if (size_ == 1 || tensors.empty()) return;
  coalesced(tensors, impl_->on_nccl(tensors), [&](std::vector<at::Tensor>& buf) {
    collective(rank_, size_, "all-reduce", [&] { impl_->backend_for(buf[0])->allreduce(buf)->wait(); });
  });
}

std::vector<double> World::sum(std::vector<double> values) const {
  if (size_ == 1 || values.empty()) return values;
  std::vector<at::Tensor> t{at::tensor(values, at::kDouble)};
  all_reduce_sum(t);
  const auto* p = t[0].data_ptr<double>();
  return std::vector<double>(p, p + t[0].numel());
}

std::vector<std::string> World::gather(const std::string& text) const {
  if (size_ == 1) return {text};
  // Lengths first, then a [ranks, longest] byte table that each rank fills at its own row: a sum gathers it.
  std::vector<double> len(static_cast<size_t>(size_), 0.0);
  len[static_cast<size_t>(rank_)] = static_cast<double>(text.size());
  len = sum(len);
  const auto longest = static_cast<int64_t>(*std::max_element(len.begin(), len.end()));
  const int64_t width = std::max<int64_t>(longest, 1);
  std::vector<int> mine(static_cast<size_t>(width), 0);
  for (size_t i = 0; i < text.size(); ++i) mine[i] = static_cast<unsigned char>(text[i]);
  std::vector<at::Tensor> table{at::zeros({size_, width}, at::kInt)};
  table[0][rank_].copy_(at::tensor(mine, at::kInt));
  all_reduce_sum(table);
  std::vector<std::string> out;
  const auto t = table[0].accessor<int, 2>();
  for (int64_t r = 0; r < size_; ++r) {
    std::string s(static_cast<size_t>(len[static_cast<size_t>(r)]), '\0');
    for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(t[r][static_cast<int64_t>(i)]);
    out.push_back(std::move(s));
  }
  return out;
}

bool World::any(bool flag) const { return sum({flag ? 1.0 : 0.0})[0] > 0; }

void World::broadcast(std::vector<at::Tensor>& tensors, int64_t root) const {
  if (size_ == 1 || tensors.empty()) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  coalesced(tensors, impl_->on_nccl(tensors), [&](std::vector<at::Tensor>& buf) {
    collective(rank_, size_, "broadcast", [&] { impl_->backend_for(buf[0])->broadcast(buf, o)->wait(); });
  });
}

void World::barrier() const {
  if (size_ == 1) return;
  collective(rank_, size_, "barrier", [&] { impl_->gloo->barrier()->wait(); });
}

void World::check_same(const std::string& what, const std::string& text) const {
  if (size_ == 1) return;
  const uint64_t h = fnv1a64(text);
  std::vector<at::Tensor> root{at::tensor({static_cast<int64_t>(h)}, at::kLong)};
  broadcast(root, 0);
  const bool differs = root[0].item<int64_t>() != static_cast<int64_t>(h);
  if (any(differs))
    throw ConfigError(what + " differs between the ranks (rank " + std::to_string(rank_) +
                      (differs ? " differs from rank 0" : " matches rank 0") + "): launch every rank with the same files and options");
}

void World::use_device(at::Device device) const {
  if (!grouped() || !device.is_cuda() || impl_->nccl) return;
#ifdef HPS_WITH_NCCL
  collective(rank_, size_, "NCCL start-up", [&] {
    c10::cuda::set_device(device.has_index() ? device.index() : 0);
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = impl_->launch.timeout;
    // Its own key space in the store (Gloo's keys live at the root).
    auto store = c10::make_intrusive<c10d::PrefixStore>("nccl", impl_->store);
    impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank_), static_cast<int>(size_), o);
    impl_->group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::NCCL, impl_->nccl);
  });
#endif
}

bool World::nccl() const { return impl_ && impl_->nccl; }
bool World::grouped() const { return impl_ && impl_->gloo; }

std::ostream& World::main_log(std::ostream& log) const {
  static std::ostream nowhere(nullptr);
  return is_main() ? log : nowhere;
}

std::string World::describe() const {
  if (size_ == 1) return "1 process";
  const auto& l = impl_->launch;
  return std::to_string(size_) + " processes (rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
         ", local rank " + std::to_string(local_rank_) + "), gloo over c10d, rendezvous " + l.master_addr + ":" +
         std::to_string(l.master_port) + (nccl() ? ", nccl for CUDA" : "");
}

namespace {
World& the_world() {
  static World w;
  return w;
}
}  // namespace

const World& world() { return the_world(); }

at::Device local_device(const std::string& spec) {
  at::Device d(spec);
  if (d.is_cuda() && !d.has_index() && world().grouped())
    d = at::Device(at::kCUDA, static_cast<at::DeviceIndex>(world().local_rank()));
  return d;
}

const World& init_from_env() {
  static bool done = false;
  if (!done) {
    done = true;
    if (auto l = launch_from_env()) the_world() = World(*l);
  }
  return the_world();
}

}  // namespace hps::dist
