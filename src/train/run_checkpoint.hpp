// Training checkpoints as folders OUT/checkpoint-<step>/, made crash-safe: files are written into
// checkpoint-<step>.tmp/, fsynced, the folder is renamed, and only then a COMPLETE marker is written, holding
// the step and every file's size and CRC-32 ({"step": N, "files": {"model/model.safetensors": "<size>:<crc>"}}).
// A folder without its marker (a crash mid-write) is ignored in favour of the newest complete one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace hps::train {

std::string checkpoint_path(const std::string& out_dir, int64_t step);

// Writes a checkpoint: `write(dir)` fills the temporary folder. Keeps the newest `keep_last` complete ones.
void write_checkpoint(const std::string& out_dir, int64_t step, const std::function<void(const std::string&)>& write,
                      int64_t keep_last);

// Complete checkpoints, oldest first.
std::vector<std::string> complete_checkpoints(const std::string& out_dir);
std::optional<std::string> latest_checkpoint(const std::string& out_dir);

// InputError naming the first file of a complete checkpoint that is missing or differs from the size and
// CRC-32 its marker recorded (a bit flip, an edit, a truncation). A marker of an older hps has no checksums.
void verify_checkpoint(const std::string& dir);

// fsync a file or folder (errors ignored where the filesystem does not support it).
void fsync_path(const std::string& path);

}  // namespace hps::train
