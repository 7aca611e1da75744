#include "chat/chat_template.h"

#include "chat/jinja_ast.h"
#include "core/error.h"

namespace elm {

struct ChatTemplate::Impl {
  jinja::Body body;
};

ChatTemplate::ChatTemplate(const std::string& source) : impl_(std::make_unique<Impl>()) {
  impl_->body = jinja::parse_template(source);
}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& vars) const {
  ELM_CHECK(vars.is_object(), "chat template variables must be a JSON object");
  jinja::Context c;
  c.scopes.emplace_back();
  jinja::add_globals(c.scopes.back());
  c.scopes.emplace_back();
  for (auto it = vars.begin(); it != vars.end(); ++it) c.set(it.key(), jinja::Value::from_json(it.value()));
  c.set("messages", jinja::Value::from_json(messages));
  std::string out;
  c.render_body(impl_->body, out);
  return out;
}

}  // namespace elm
