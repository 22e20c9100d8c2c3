#include "io/safetensors_header.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "io/json_text.hpp"

namespace hps::io {

using nlohmann::json;

namespace {

// Every dtype in the safetensors spec with its element size; 0: a packed sub-byte format (F4, F6_*).
const std::pair<const char*, size_t> kDtypes[] = {
    {"F64", 8},     {"F32", 4},     {"F16", 2},     {"BF16", 2},    {"I64", 8},     {"I32", 4},
    {"I16", 2},     {"I8", 1},      {"U8", 1},      {"BOOL", 1},    {"U16", 2},     {"U32", 4},
    {"U64", 8},     {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"F6_E2M3", 0}, {"F6_E3M2", 0},
    {"F4", 0},      {"C64", 8},
};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

size_t dtype_bytes(const std::string& dtype, const std::string& where) {
  for (const auto& [name, bytes] : kDtypes) {
    if (dtype != name) continue;
    if (bytes == 0)
      throw InputError(where + ": dtype " + dtype + " is valid safetensors (a packed sub-byte format) but has no " +
                       "torch equivalent; convert the checkpoint to F32/F16/BF16 first");
    return bytes;
  }
  std::string known;
  for (const auto& d : kDtypes) known += std::string(known.empty() ? "" : ", ") + d.first;
  const std::string shown = dtype.size() > 40 ? dtype.substr(0, 40) + "…" : dtype;
  throw InputError(where + ": unknown dtype '" + shown + "' (the spec defines: " + known + ")");
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
    const uint64_t elem = dtype_bytes(t.dtype, at_name);
    if (!v["shape"].is_array()) throw InputError(at_name + ": shape must be an array of non-negative integers");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned())
        throw InputError(at_name + ": shape must be an array of non-negative integers, found " + json_excerpt(d));
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
        throw InputError(at_name + ": shape " + json_excerpt(v["shape"]) + " has more elements than fit in 64 bits");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw InputError(at_name + ": data_offsets must be [begin, end] with non-negative integers, found " +
                       json_excerpt(off));
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.begin > t.end)
      throw InputError(at_name + ": data_offsets begin " + std::to_string(t.begin) + " > end " +
                       std::to_string(t.end));
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, elem, &nbytes))
      throw InputError(at_name + ": shape " + shape_str(t.shape) + " × " + t.dtype +
                       " overflows 64-bit byte count");
    if (nbytes != t.end - t.begin)
      throw InputError(at_name + ": byte size " + std::to_string(t.end - t.begin) + " (data_offsets [" +
                       std::to_string(t.begin) + ", " + std::to_string(t.end) + "]) != " + std::to_string(numel) +
                       " elements × " + std::to_string(elem) + " bytes (" + t.dtype + " " +
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

ParsedHeader parse_layout(const unsigned char* bytes, uint64_t size, const std::string& path, uint64_t& data_offset) {
  if (size < 8)
    throw InputError(path + ": file is " + std::to_string(size) +
                     " bytes, shorter than the 8-byte header length field (not a safetensors file)");
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
  data_offset = 8 + n;
  return parse_header(header, size - 8 - n, path);
}

}  // namespace hps::io
