// UTF-8 helpers the tokenizer needs: validation with the offending offset, lossy decoding that matches
// Rust's String::from_utf8_lossy (what HF tokenizers uses: one U+FFFD per maximal invalid subpart), and
// GPT-2's reversible byte ↔ printable-character map used by ByteLevel pre-tokenizers and decoders.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hps::text {

// Byte offset of the first byte that starts an invalid UTF-8 sequence, or nullopt when s is valid.
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Decodes bytes as UTF-8, replacing each maximal invalid subpart with U+FFFD (Unicode §3.9 / WHATWG).
std::string utf8_lossy(std::string_view bytes);

// Length in bytes of the (valid) UTF-8 sequence starting with lead byte c.
inline size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

// The code point of the valid UTF-8 sequence at s[i] (i must start a sequence).
char32_t decode_at(std::string_view s, size_t i);
void append_utf8(std::string& out, char32_t cp);

// Unicode NFC (compat: NFKC) of valid UTF-8, as utf8proc computes it, but with canonical ordering done by a
// stable sort per run of combining marks: utf8proc's own ordering is an exchange sort, quadratic in a run's
// length (a 1 MB run of marks took over a minute; HF tokenizers: under a second).
std::string unicode_normalize(std::string_view s, bool compat);

// GPT-2 byte map: byte b ↔ the UTF-8 string of one printable code point.
const std::array<std::string, 256>& byte_to_unicode();
// Inverse: the byte for a code point of that map, or -1.
int unicode_to_byte(char32_t cp);

// Unicode White_Space (what Rust's char::is_whitespace tests).
bool is_unicode_whitespace(char32_t cp);
// Letters or numbers (Rust's char::is_alphanumeric).
bool is_unicode_alnum(char32_t cp);
// A regex \w character: letters, marks, decimal digits, connector punctuation ('_').
bool is_word_char(char32_t cp);

}  // namespace hps::text
