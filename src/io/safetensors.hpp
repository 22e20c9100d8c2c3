// safetensors reader and writer (https://huggingface.co/docs/safetensors, format spec in its README).
//
// Layout: [u64 little-endian N][N bytes of UTF-8 JSON header][data]. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section) plus an optional
// "__metadata__" string→string map. The reader mmaps the file (MAP_PRIVATE: tensors alias the page cache,
// no copy on load; an in-place write copies one page, never touches the file) and enforces every rule below
// with its own message naming the file, tensor and byte offsets:
//   file shorter than 8 bytes · header length past EOF or > 100 MB · header not a UTF-8 JSON object ·
//   duplicate names · unknown dtype · begin > end · gaps or overlaps between tensors ·
//   byte size != numel × dtype size (checked multiplication) · trailing bytes after the last tensor.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
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

// The at::ScalarType for a safetensors dtype name; throws InputError naming `where` for names the spec
// does not define or torch cannot hold.
at::ScalarType scalar_type_of(const std::string& dtype, const std::string& where);
// The safetensors dtype name for a torch dtype (throws for types the format has no name for).
std::string dtype_name(at::ScalarType type);

class SafetensorsFile {
 public:
  // Opens and validates; throws InputError on any rule above.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor viewing the mapped bytes (copied only when the offset is not aligned for its dtype).
  // Keeps the mapping alive as long as the tensor lives.
  at::Tensor get(const std::string& name) const;
  uint64_t data_offset() const { return data_offset_; }

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  uint64_t data_offset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates a header (exposed for tests). `file_size` is the whole file's size in bytes.
struct ParsedHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};
ParsedHeader parse_header(const std::string& header_json, uint64_t data_bytes, const std::string& where);

// Writes tensors (any device; contiguous copies are made on CPU) in name order, 8-byte aligned header,
// atomically (temp file + rename). Python's safetensors reads the result.
void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace hps::io
