// JSONL(.gz) preference data in every format hps reads. The first byte picks the options (format, what to do
// with a bad record, gzip or not); the rest is the file.
#include "data/dataset.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using hps::data::Format;
  const uint8_t pick = data[0];
  hps::data::DatasetOptions options;
  const Format formats[] = {Format::auto_detect, Format::hh_rlhf, Format::pku, Format::ranked, Format::messages};
  options.format = formats[pick % 5];
  options.on_bad_record = (pick / 5) % 2 ? hps::data::OnBadRecord::skip : hps::data::OnBadRecord::error;
  options.pku_ranking = (pick / 10) % 2 ? hps::data::PkuRanking::safe : hps::data::PkuRanking::helpful;
  options.min_responses = 1 + (pick / 20) % 2;
  const bool gzip = (pick / 40) % 2;
  return hps::fuzz::run_input([&] {
    const std::string path =
        hps::fuzz::write_temp(gzip ? "data.jsonl.gz" : "data.jsonl", hps::fuzz::as_text(data + 1, size - 1));
    const auto ds = hps::data::read_dataset(path, options);
    for (const auto& r : ds.records)
      if (static_cast<int64_t>(r.responses.size()) < options.min_responses) std::abort();  // a promise of the reader
  });
}
