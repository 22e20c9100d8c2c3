// The safetensors layout without tensors (https://huggingface.co/docs/safetensors, format spec in its README):
// torch-free, so the fuzzers (fuzz/) drive exactly the code every checkpoint load runs.
//
// Layout: [u64 little-endian N][N bytes of UTF-8 JSON header][data]. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section) plus an optional
// "__metadata__" string→string map. Every rule has its own InputError naming the file, tensor and offsets:
//   file shorter than 8 bytes · header length past EOF or > 100 MB · header not a UTF-8 JSON object ·
//   duplicate names · unknown dtype · begin > end · gaps or overlaps between tensors ·
//   byte size != numel × dtype size (checked multiplication) · trailing bytes after the last tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hps::io {

inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  std::string dtype;            // as written in the file: "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
};

struct ParsedHeader {
  std::vector<TensorInfo> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
};

// Bytes per element of a safetensors dtype; InputError naming `where` for names the spec does not define
// and for its packed sub-byte formats (F4, F6_*), which no tensor library can view.
size_t dtype_bytes(const std::string& dtype, const std::string& where);

// Parses and validates a header. `data_bytes`: the size of the data section (file size − 8 − header length).
ParsedHeader parse_header(const std::string& header_json, uint64_t data_bytes, const std::string& where);

// Validates a whole file's layout from its `size` bytes (`path` names it in errors); `data_offset` gets 8 + N.
ParsedHeader parse_layout(const unsigned char* bytes, uint64_t size, const std::string& path, uint64_t& data_offset);

}  // namespace hps::io
