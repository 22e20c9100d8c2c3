#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "io/json_text.hpp"
#include "io/atomic_file.hpp"

namespace hps::io {

using nlohmann::json;

namespace {

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
  bool supported;  // false: the spec names it but torch has no matching dtype
};

// Every dtype in the safetensors spec. F4/F6 are packed sub-byte formats torch cannot view.
const DtypeEntry kDtypes[] = {
    {"F64", at::kDouble, true},          {"F32", at::kFloat, true},
    {"F16", at::kHalf, true},            {"BF16", at::kBFloat16, true},
    {"I64", at::kLong, true},            {"I32", at::kInt, true},
    {"I16", at::kShort, true},           {"I8", at::kChar, true},
    {"U8", at::kByte, true},             {"BOOL", at::kBool, true},
    {"U16", at::kUInt16, true},          {"U32", at::kUInt32, true},
    {"U64", at::kUInt64, true},          {"F8_E4M3", at::kFloat8_e4m3fn, true},
    {"F8_E5M2", at::kFloat8_e5m2, true}, {"F8_E8M0", at::kFloat8_e8m0fnu, true},
    {"F6_E2M3", at::kByte, false},       {"F6_E3M2", at::kByte, false},
    {"F4", at::kByte, false},            {"C64", at::kComplexFloat, true},
};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

at::ScalarType scalar_type_of(const std::string& dtype, const std::string& where) {
  for (const auto& d : kDtypes) {
    if (dtype != d.name) continue;
    if (!d.supported)
      throw InputError(where + ": dtype " + dtype + " is valid safetensors but has no torch equivalent; " +
                       "convert the checkpoint to F32/F16/BF16 first");
    return d.type;
  }
  std::string known;
  for (const auto& d : kDtypes) known += std::string(known.empty() ? "" : ", ") + d.name;
  throw InputError(where + ": unknown dtype '" + dtype + "' (the spec defines: " + known + ")");
}

std::string dtype_name(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.supported && d.type == type) return d.name;
  throw InputError(std::string("safetensors has no dtype for torch type ") + c10::toString(type));
}

ParsedHeader parse_header(const std::string& header_json, uint64_t data_bytes, const std::string& where) {
  // Duplicate keys: nlohmann keeps the last silently, so watch keys of the top-level object as they parse.
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = parse_json(header_json, where + ": header", on_event);
  } catch (const InputError& e) {
    throw InputError(e.message() + " — the header is not valid UTF-8 JSON");
  }
  if (!header.is_object())
    throw InputError(where + ": header must be a JSON object, found " + std::string(header.type_name()));
  if (!duplicate.empty()) throw InputError(where + ": duplicate tensor name '" + duplicate + "' in header");

  ParsedHeader out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw InputError(where + ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw InputError(where + ": __metadata__ value for '" + m.key() + "' must be a string, found " +
                           m.value().type_name());
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string at_name = where + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw InputError(at_name + ": entry must be an object with dtype, shape and data_offsets");
    TensorInfo t;
    t.name = name;
    if (!v["dtype"].is_string()) throw InputError(at_name + ": dtype must be a string");
    t.dtype = v["dtype"].get<std::string>();
    const at::ScalarType type = scalar_type_of(t.dtype, at_name);
    if (!v["shape"].is_array()) throw InputError(at_name + ": shape must be an array of non-negative integers");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned())
        throw InputError(at_name + ": shape must be an array of non-negative integers, found " + d.dump());
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
        throw InputError(at_name + ": shape " + v["shape"].dump() + " has more elements than fit in 64 bits");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw InputError(at_name + ": data_offsets must be [begin, end] with non-negative integers, found " +
                       off.dump());
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.begin > t.end)
      throw InputError(at_name + ": data_offsets begin " + std::to_string(t.begin) + " > end " +
                       std::to_string(t.end));
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(c10::elementSize(type)), &nbytes))
      throw InputError(at_name + ": shape " + shape_str(t.shape) + " × " + t.dtype +
                       " overflows 64-bit byte count");
    if (nbytes != t.end - t.begin)
      throw InputError(at_name + ": byte size " + std::to_string(t.end - t.begin) + " (data_offsets [" +
                       std::to_string(t.begin) + ", " + std::to_string(t.end) + "]) != " + std::to_string(numel) +
                       " elements × " + std::to_string(c10::elementSize(type)) + " bytes (" + t.dtype + " " +
                       shape_str(t.shape) + ")");
    out.tensors.push_back(std::move(t));
  }
  // The data section must be covered exactly once, in order, without holes.
  std::stable_sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& t : out.tensors) {
    if (t.begin > cursor)
      throw InputError(where + ": gap in data section: bytes [" + std::to_string(cursor) + ", " +
                       std::to_string(t.begin) + ") belong to no tensor (next tensor '" + t.name + "')");
    if (t.begin < cursor)
      throw InputError(where + ": tensor '" + t.name + "' at [" + std::to_string(t.begin) + ", " +
                       std::to_string(t.end) + ") overlaps the previous tensor, which ends at " +
                       std::to_string(cursor));
    cursor = t.end;
  }
  if (cursor > data_bytes)
    throw InputError(where + ": tensors need " + std::to_string(cursor) + " data bytes but the file has only " +
                     std::to_string(data_bytes) + " after the header (truncated file?)");
  if (cursor < data_bytes)
    throw InputError(where + ": " + std::to_string(data_bytes - cursor) + " trailing bytes after the last tensor");
  return out;
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
  if (size < 8) {
    ::close(fd);
    throw InputError(path + ": file is " + std::to_string(size) +
                     " bytes, shorter than the 8-byte header length field (not a safetensors file)");
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
  const auto* bytes = static_cast<const unsigned char*>(map->addr);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian u64
  if (n > kMaxHeaderBytes)
    throw InputError(path + ": header length " + std::to_string(n) + " bytes exceeds the 100 MB limit");
  if (n > size - 8)
    throw InputError(path + ": header length " + std::to_string(n) + " runs past end of file (file is " +
                     std::to_string(size) + " bytes)");
  const std::string header(reinterpret_cast<const char*>(bytes + 8), n);
  if (header.empty() || header[0] != '{')
    throw InputError(path + ": header must be a JSON object starting with '{' at byte offset 8");
  auto parsed = parse_header(header, size - 8 - n, path);
  f.map_ = std::move(map);
  f.data_offset_ = 8 + n;
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
