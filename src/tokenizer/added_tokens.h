// Added tokens (special and user-defined): found in the text before the model sees it, leftmost
// longest first, with HF's lstrip / rstrip / single_word semantics.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace elm {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false;
  bool normalized = false;  // matched in the normalized text rather than the raw text
};

class AddedTokenMatcher {
 public:
  void add(const AddedToken& t);  // tokens with empty content are ignored
  bool empty() const { return nodes_.size() <= 1; }

  struct Segment {
    size_t begin, end;  // bytes of the text
    int32_t id;         // the added token, or -1 for plain text
  };
  // Splits text into plain runs and matched tokens, covering all of it except whitespace that
  // lstrip/rstrip tokens absorb.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // byte -> node
    int32_t token = -1;                              // index into tokens_ when a token ends here
  };
  int32_t child(int32_t node, uint8_t b) const;
  std::vector<Node> nodes_{Node{}};
  std::vector<AddedToken> tokens_;
  bool first_byte_[256] = {};
};

}  // namespace elm
