#include "ocigate/oci/challenge.hpp"

#include <cctype>

namespace ocigate::oci {

namespace {

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  bool done() const { return pos_ >= text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  void skip_space() {
    while (!done() && (peek() == ' ' || peek() == '\t')) ++pos_;
  }
  void skip_space_and_commas() {
    while (!done() && (peek() == ' ' || peek() == '\t' || peek() == ',')) ++pos_;
  }
  std::string_view token() {
    auto start = pos_;
    while (!done() && token_char(peek())) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  // A quoted string with backslash escapes; the opening quote is at pos_.
  bool quoted(std::string& out) {
    ++pos_;
    while (!done()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\' && !done()) c = text_[pos_++];
      out.push_back(c);
    }
    return false;  // unterminated
  }
  std::size_t pos() const { return pos_; }
  void seek(std::size_t p) { pos_ = p; }
  // Skips to just past the next top-level comma.
  void skip_item() {
    while (!done() && peek() != ',') {
      if (peek() == '"') {
        std::string ignored;
        quoted(ignored);
      } else {
        ++pos_;
      }
    }
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::vector<Challenge> parse_challenges(std::string_view header) {
  std::vector<Challenge> out;
  Scanner s(header);
  while (true) {
    s.skip_space_and_commas();
    if (s.done()) break;
    auto scheme = s.token();
    if (scheme.empty()) {
      s.skip_item();
      continue;
    }
    Challenge challenge{lower(scheme), {}};
    // Parameters: name=value pairs separated by commas, until a token followed by a space and
    // another token (the next challenge's scheme).
    while (true) {
      s.skip_space_and_commas();
      if (s.done()) break;
      auto mark = s.pos();
      auto name = s.token();
      s.skip_space();
      if (name.empty()) {
        s.skip_item();
        continue;
      }
      if (s.peek() != '=') {
        s.seek(mark);  // the next challenge starts here
        break;
      }
      s.seek(s.pos() + 1);
      s.skip_space();
      std::string value;
      if (s.peek() == '"') {
        if (!s.quoted(value)) break;
      } else {
        value = std::string(s.token());
        // token68 padding ("abc==") lands here as '=' characters; keep them.
        while (s.peek() == '=') {
          value.push_back('=');
          s.seek(s.pos() + 1);
        }
      }
      challenge.params[lower(name)] = value;
    }
    out.push_back(std::move(challenge));
  }
  return out;
}

}  // namespace ocigate::oci
