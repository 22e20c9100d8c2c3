#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace hps::io {

using nlohmann::json;

namespace {

// The torch type of every safetensors dtype torch can view (dtype_bytes() knows the rest of the spec).
const std::pair<const char*, at::ScalarType> kTorchTypes[] = {
    {"F64", at::kDouble},          {"F32", at::kFloat},         {"F16", at::kHalf},
    {"BF16", at::kBFloat16},       {"I64", at::kLong},          {"I32", at::kInt},
    {"I16", at::kShort},           {"I8", at::kChar},           {"U8", at::kByte},
    {"BOOL", at::kBool},           {"U16", at::kUInt16},        {"U32", at::kUInt32},
    {"U64", at::kUInt64},          {"F8_E4M3", at::kFloat8_e4m3fn}, {"F8_E5M2", at::kFloat8_e5m2},
    {"F8_E8M0", at::kFloat8_e8m0fnu}, {"C64", at::kComplexFloat},
};

}  // namespace

at::ScalarType scalar_type_of(const std::string& dtype, const std::string& where) {
  dtype_bytes(dtype, where);  // unknown and sub-byte names: their errors
  for (const auto& [name, type] : kTorchTypes)
    if (dtype == name) return type;
  throw InputError(where + ": dtype " + dtype + " is valid safetensors but has no torch equivalent");
}

std::string dtype_name(at::ScalarType type) {
  for (const auto& [name, t] : kTorchTypes)
    if (t == type) return name;
  throw InputError(std::string("safetensors has no dtype for torch type ") + c10::toString(type));
}

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && size) ::munmap(addr, size);
  }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw InputError("cannot stat " + path + ": " + std::strerror(errno));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {  // before mmap: an empty file cannot be mapped
    ::close(fd);
    parse_layout(nullptr, size, path, f.data_offset_);  // throws: shorter than the 8-byte length field
  }
  auto map = std::make_shared<Mapping>();
  // PRIVATE + WRITE: copy-on-write pages, so tensors may be modified in place without touching the file.
  map->addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map->addr == MAP_FAILED) {
    map->addr = nullptr;
    throw InputError("cannot mmap " + path + ": " + std::strerror(errno));
  }
  map->size = size;
  uint64_t data_offset = 0;
  auto parsed = parse_layout(static_cast<const unsigned char*>(map->addr), size, path, data_offset);
  f.map_ = std::move(map);
  f.data_offset_ = data_offset;
  f.tensors_ = std::move(parsed.tensors);
  f.metadata_ = std::move(parsed.metadata);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw InputError(path_ + ": no tensor named '" + name + "'");
  return tensors_[it->second];
}

at::Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  const at::ScalarType type = scalar_type_of(t.dtype, path_);
  auto* ptr = static_cast<unsigned char*>(map_->addr) + data_offset_ + t.begin;
  auto keep = map_;
  at::Tensor view = at::from_blob(ptr, t.shape, [keep](void*) {}, at::TensorOptions().dtype(type));
  // Kernels may assume dtype alignment; the spec does not promise it, so copy the rare misaligned tensor.
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(type) != 0) return view.clone();
  return view;
}

void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw InputError("tensor name '__metadata__' is reserved");
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    data.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // pad so the data section starts 8-byte aligned
  write_file_atomic(path, [&](std::ostream& out) {
    unsigned char len[8];
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& t : data) out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  });
}

}  // namespace hps::io
