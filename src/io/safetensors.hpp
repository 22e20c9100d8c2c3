// safetensors reader and writer. The layout and its rules: io/safetensors_header.hpp. The reader mmaps the
// file (MAP_PRIVATE: tensors alias the page cache, no copy on load; an in-place write copies one page, never
// touches the file).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors_header.hpp"

namespace hps::io {

// The at::ScalarType for a safetensors dtype name; throws InputError naming `where` for names the spec
// does not define or torch cannot hold.
at::ScalarType scalar_type_of(const std::string& dtype, const std::string& where);
// The safetensors dtype name for a torch dtype (throws for types the format has no name for).
std::string dtype_name(at::ScalarType type);

class SafetensorsFile {
 public:
  // Opens and validates; throws InputError on any rule of io/safetensors_header.hpp.
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

// Writes tensors (any device; contiguous copies are made on CPU) in name order, 8-byte aligned header,
// atomically (temp file + rename). Python's safetensors reads the result.
void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace hps::io
