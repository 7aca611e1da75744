// Chat templates: the Jinja2 subset Hugging Face chat templates use, rendered natively.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace elm {

class ChatTemplate {
 public:
  // Parses the template source; throws elm::Error pointing at the line of a syntax error.
  explicit ChatTemplate(const std::string& source);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders `messages` (a JSON array of {role, content, ...}); `vars` adds template variables such as
  // add_generation_prompt, tools, enable_thinking, bos_token, eos_token. Template errors (including
  // raise_exception) throw elm::Error. The JSON is ordered (nlohmann::ordered_json) because key
  // order shows in the output (tools | tojson): parse requests into ordered_json to keep it.
  std::string render(const nlohmann::ordered_json& messages,
                     const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace elm
