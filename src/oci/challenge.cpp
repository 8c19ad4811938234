#include "ocigate/oci/challenge.hpp"

namespace ocigate::oci {

namespace {

bool alpha_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// tchar of RFC 9110 §5.6.2.
bool token_char(char c) { return alpha_digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos; }

// token68 of RFC 9110 §11.2, without its trailing '=' padding.
bool token68_char(char c) { return alpha_digit(c) || std::string_view("-._~+/").find(c) != std::string_view::npos; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  bool done() const { return pos_ >= text_.size(); }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  std::size_t pos() const { return pos_; }
  void seek(std::size_t p) { pos_ = p; }
  void advance() { ++pos_; }

  void skip_space() {
    while (peek() == ' ' || peek() == '\t') ++pos_;
  }
  void skip_space_and_commas() {
    while (peek() == ' ' || peek() == '\t' || peek() == ',') ++pos_;
  }
  template <class Pred>
  std::string_view take_while(Pred pred) {
    auto start = pos_;
    while (!done() && pred(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  std::string_view token() { return take_while(token_char); }

  // A quoted string with backslash escapes; the opening quote is at pos_. False when unterminated.
  bool quoted(std::string& out) {
    ++pos_;
    while (!done()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\' && !done()) c = text_[pos_++];
      out.push_back(c);
    }
    return false;
  }

  // Skips to the next top-level comma (not past it), stepping over quoted strings.
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

  // After a scheme: a token68 credential ("Negotiate abc+/==") ends at the end or at a comma,
  // where an auth-param ("realm=x") always has a value after its '='. Consumes it if present.
  bool skip_token68() {
    auto mark = pos_;
    if (take_while(token68_char).empty()) return false;
    while (peek() == '=') ++pos_;
    skip_space();
    if (done() || peek() == ',') return true;
    pos_ = mark;
    return false;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

// Reads auth-params until the next challenge's scheme (a token not followed by '=') or the end.
void read_params(Scanner& s, Challenge& challenge) {
  while (true) {
    s.skip_space_and_commas();
    if (s.done()) return;
    auto mark = s.pos();
    auto name = s.token();
    if (name.empty()) {
      s.skip_item();
      continue;
    }
    s.skip_space();
    if (s.peek() != '=') {
      s.seek(mark);  // the next challenge starts here
      return;
    }
    s.advance();
    s.skip_space();
    std::string value;
    if (s.peek() == '"') {
      if (!s.quoted(value)) return;  // unterminated: the rest of the header is unusable
    } else {
      value = std::string(s.token());
    }
    // Parameter names must not repeat (RFC 9110 §11.2); when they do, the first one counts.
    challenge.params.emplace(lower(name), std::move(value));
  }
}

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
    if (s.peek() == '=') {  // "name=value" where a scheme should be: not a challenge
      s.skip_item();
      continue;
    }
    Challenge challenge{lower(scheme), {}};
    bool separated = s.peek() == ' ' || s.peek() == '\t';
    s.skip_space();
    if (!(separated && s.skip_token68())) read_params(s, challenge);
    out.push_back(std::move(challenge));
  }
  return out;
}

}  // namespace ocigate::oci
