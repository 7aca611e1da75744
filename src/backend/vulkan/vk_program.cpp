#include "backend/vulkan/vk_program.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"

namespace elm::vk {

namespace {

bool matrix_type(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8 || t == DType::Q4 || t == DType::Q4M;
}

// weights.glsl's WTYPE.
uint32_t wtype(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::BF16: return 2;
    case DType::Q8: return 3;
    case DType::Q4: return 4;
    case DType::Q4M: return 5;
    default: fail("Vulkan: weights of type ", dtype_name(t), " are not supported");
  }
}

uint32_t div_up(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Writes push constants in declaration order.
struct Push {
  Launch& l;
  size_t i = 0;
  Push& u(uint64_t v) {
    l.push[i++] = uint32_t(v);
    return *this;
  }
  Push& f(double v) { return u(bits(float(v))); }
};

// Rows of a value in this step: T, or the number of output rows.
uint32_t rows_of(int64_t rows, const StepDims& d) { return rows == kRowsOut ? d.n_out : d.T; }

// A grid of up to n_items one-dimensional workgroups of wg invocations, for shaders with a stride loop.
std::array<uint32_t, 3> stride_grid(uint64_t n_items, uint32_t wg) {
  return {std::clamp<uint32_t>(div_up(n_items, wg), 1, 65535), 1, 1};
}

// Unary ops: unary.comp's op codes.
int unary_code(Op op) {
  switch (op) {
    case Op::Silu: return 0;
    case Op::Gelu: return 1;
    case Op::GeluTanh: return 2;
    case Op::Sigmoid: return 3;
    case Op::Softplus: return 4;
    case Op::Tanh: return 5;
    case Op::Scale: return 6;
    case Op::SoftCap: return 7;
    default: return -1;
  }
}

// Matvec flags (matvec.comp).
constexpr uint32_t kBias = 1, kRes = 2, kNorm = 4, kNormAddOne = 8, kScaleF32 = 16;

struct MatvecSpec {
  int32_t x = -1;          // input node
  int wi = -1;             // device weight
  uint32_t w_row0 = 0, n_out = 0;
  std::array<int32_t, 3> outs{-1, -1, -1};
  std::array<uint32_t, 3> lds{0, 0, 0};
  uint32_t n0 = 0, n1 = 0;
  bool glu = false;
  uint32_t glu_off = 0, act = 0;
  int bias = -1;           // device weight (float32 vector)
  int32_t res = -1;        // residual node
  int norm_w = -1;         // device weight of the RMSNorm folded in
  double eps = 0;
  bool add_one = false;
};

// Matmuls that share one launch in the small list.
struct Group {
  std::vector<int32_t> mm;     // the matmul nodes, in order (GLU: gate, up)
  int32_t glu_mul = -1;        // GLU: the Mul node whose value the launch writes
  int32_t glu_act = -1;        //      and the activation node it absorbs
  int32_t res_add = -1, res = -1;  // residual: the Add it writes, the other operand
  int32_t norm = -1;           // the RMSNorm it computes from its input
  int wi = -1;                 // the (concatenated) weight
};

class Builder {
 public:
  Builder(const SegmentSpec& s, const Tuning& t) : s_(s), g_(*s.graph), w_(*s.weights), t_(t) {
    const size_t N = g_.nodes.size();
    seg_index_.assign(N, -1);
    for (size_t i = 0; i < s.nodes.size(); ++i) seg_index_[size_t(s.nodes[i])] = int32_t(i);
    users_.resize(N);
    for (int32_t n : s.nodes)
      for (int32_t in : g_.nodes[size_t(n)].inputs)
        if (in >= 0) users_[size_t(in)].push_back(n);
    is_output_.assign(N, false);
    for (int32_t o : s.outputs) is_output_[size_t(o)] = true;
    group_of_.assign(N, -1);
  }

  Program build() {
    find_groups();
    find_folded_ropes();
    for (int32_t n : s_.nodes)
      if (!rope_folded_[size_t(n)]) emit(n, false, p_.large);
    std::vector<bool> absorbed = rope_folded_;
    for (const Group& gr : groups_) {
      for (size_t i = 1; i < gr.mm.size(); ++i) absorbed[size_t(gr.mm[i])] = true;
      for (int32_t a : {gr.glu_mul, gr.glu_act, gr.res_add, gr.norm})
        if (a >= 0) absorbed[size_t(a)] = true;
      if (gr.mm.size() > 1) p_.fused_matmuls += int(gr.mm.size());
    }
    for (int32_t n : s_.nodes) {
      const int gi = group_of_[size_t(n)];
      if (gi >= 0 && groups_[size_t(gi)].mm[0] == n) emit_group(groups_[size_t(gi)]);
      else if (!absorbed[size_t(n)]) emit(n, true, p_.small);
    }
    return std::move(p_);
  }

 private:
  const Node& node(int32_t id) const { return g_.nodes[size_t(id)]; }
  bool in_segment(int32_t id) const { return id >= 0 && seg_index_[size_t(id)] >= 0; }
  // v's only reader is u (once), and nothing outside the segment reads v.
  bool only_user(int32_t v, int32_t u) const {
    return !is_output_[size_t(v)] && users_[size_t(v)].size() == 1 && users_[size_t(v)][0] == u;
  }
  const TensorView& tensor(int32_t weight_node) const { return w_.get(node(weight_node).name); }

  int weight(std::vector<std::string> names, bool f32) {
    DeviceWeight d = describe_weight(w_, std::move(names), f32);
    const std::string key = d.key();
    auto it = weight_index_.find(key);
    if (it != weight_index_.end()) return it->second;
    p_.weights.push_back(std::move(d));
    return weight_index_[key] = int(p_.weights.size() - 1);
  }
  int vec(int32_t weight_node) { return weight({node(weight_node).name}, true); }
  static Ref value(int32_t id) { return {Ref::Value, id}; }
  static Ref wref(int wi) { return {Ref::Weight, wi}; }

  Kernel kernel(int32_t n, std::string shader, std::vector<uint32_t> spec, bool reduces = false) {
    Kernel k;
    k.shader = std::move(shader);
    k.spec = std::move(spec);
    k.reduces = reduces;
    k.pos = seg_index_[size_t(n)];
    k.label = node(n).name.empty() ? op_name(node(n).op) : node(n).name;
    return k;
  }

  // --- fusion analysis (small list) ---

  bool compatible(int32_t a, int32_t b) const {
    const Node &na = node(a), &nb = node(b);
    if (na.op != Op::MatMul || nb.op != Op::MatMul || na.inputs[0] != nb.inputs[0]) return false;
    const TensorView &ta = tensor(na.inputs[1]), &tb = tensor(nb.inputs[1]);
    if (ta.dtype != tb.dtype || ta.cols() != tb.cols()) return false;
    if (is_quantized(ta.dtype) && (ta.group != tb.group || ta.scale_dtype != tb.scale_dtype)) return false;
    const bool bias_a = na.inputs.size() > 2 && na.inputs[2] >= 0, bias_b = nb.inputs.size() > 2 && nb.inputs[2] >= 0;
    return bias_a == bias_b;
  }
  bool ungrouped_matmul(int32_t id) const {
    return in_segment(id) && node(id).op == Op::MatMul && group_of_[size_t(id)] < 0;
  }
  // Concatenated weights must fit one binding.
  bool fits(const std::vector<int32_t>& mm) const {
    uint64_t bytes = 0;
    for (int32_t m : mm) bytes += tensor(node(m).inputs[1]).nbytes + 256;
    return bytes <= t_.max_range;
  }
  void add_group(Group gr) {
    for (int32_t m : gr.mm) group_of_[size_t(m)] = int(groups_.size());
    groups_.push_back(std::move(gr));
  }

  void find_groups() {
    // GLU: Mul(act(x W_gate^T), x W_up^T) in either operand order.
    for (int32_t u : s_.nodes) {
      const Node& mul = node(u);
      if (mul.op != Op::Mul) continue;
      for (int side = 0; side < 2; ++side) {
        const int32_t act = mul.inputs[size_t(side)], up = mul.inputs[size_t(1 - side)];
        if (!in_segment(act) || !ungrouped_matmul(up)) continue;
        const Node& a = node(act);
        if (a.op != Op::Silu && a.op != Op::Gelu && a.op != Op::GeluTanh) continue;
        const int32_t gate = a.inputs[0];
        if (!ungrouped_matmul(gate) || gate == up || !compatible(gate, up) || !only_user(gate, act) ||
            !only_user(act, u) || !only_user(up, u) || !fits({gate, up}))
          continue;
        Group gr;
        gr.mm = {gate, up};  // gate rows first: the up rows start glu_off = N rows later
        gr.glu_mul = u, gr.glu_act = act;
        add_group(gr);
        break;
      }
    }
    // Matmuls of one input (q, k, v): up to three per launch.
    for (int32_t m : s_.nodes) {
      if (!ungrouped_matmul(m)) continue;
      Group gr;
      gr.mm = {m};
      for (int32_t o : s_.nodes) {
        if (gr.mm.size() == 3) break;
        if (o != m && seg_index_[size_t(o)] > seg_index_[size_t(m)] && ungrouped_matmul(o) && compatible(m, o)) {
          std::vector<int32_t> cand = gr.mm;
          cand.push_back(o);
          if (fits(cand)) gr.mm = cand;
        }
      }
      if (gr.mm.size() > 1) add_group(gr);
    }
    // Single matmuls: a residual Add folded in (x + x W^T), the other operand computed before.
    for (int32_t m : s_.nodes) {
      if (!ungrouped_matmul(m) || users_[size_t(m)].size() != 1) continue;
      const int32_t a = users_[size_t(m)][0];
      if (!only_user(m, a) || node(a).op != Op::Add) continue;
      const int32_t r = node(a).inputs[0] == m ? node(a).inputs[1] : node(a).inputs[0];
      if (r == m || node(r).rows != node(a).rows) continue;
      if (in_segment(r) && seg_index_[size_t(r)] > seg_index_[size_t(m)]) continue;
      Group gr;
      gr.mm = {m};
      gr.res_add = a, gr.res = r;
      add_group(gr);
    }
    // Single matmuls left: a group of one, so an RMSNorm can still fold into it.
    for (int32_t m : s_.nodes)
      if (ungrouped_matmul(m)) add_group(Group{{m}});
    // RMSNorm (one group, with a weight) read only by one group's matmuls: computed inside them.
    for (Group& gr : groups_) {
      const int32_t x = node(gr.mm[0]).inputs[0];
      if (!in_segment(x) || is_output_[size_t(x)]) continue;
      const Node& nx = node(x);
      if (nx.op != Op::RmsNorm || nx.attrs.i("group", nx.cols) != nx.cols || nx.inputs.size() < 2 || nx.inputs[1] < 0)
        continue;
      bool only_group = true;
      for (int32_t u : users_[size_t(x)])
        only_group &= std::find(gr.mm.begin(), gr.mm.end(), u) != gr.mm.end();
      if (only_group) gr.norm = x;
    }
    for (Group& gr : groups_) {
      std::vector<std::string> names;
      for (int32_t m : gr.mm) names.push_back(node(node(m).inputs[1]).name);
      gr.wi = weight(names, false);
    }
  }

  // A Rope whose only reader is an attention's q (or k, when it writes the cache) is applied by the
  // attention kernel (kv_write for k) while it loads the values.
  void find_folded_ropes() {
    rope_folded_.assign(g_.nodes.size(), false);
    for (int32_t a : s_.nodes) {
      const Node& at = node(a);
      if (at.op != Op::Attention) continue;
      for (size_t i = 0; i < (at.attrs.i("write", 1) ? 2u : 1u); ++i) {
        const int32_t r = at.inputs[i];
        if (!in_segment(r) || node(r).op != Op::Rope || !only_user(r, a) ||
            node(r).attrs.i("head_dim") != at.attrs.i("head_dim"))
          continue;
        rope_folded_[size_t(r)] = true;
        (i == 0 ? rope_q_ : rope_k_)[a] = r;
      }
    }
  }

  // Push constants of a folded rope: rope, F, pairs, attn_factor (all 0 without one).
  void rope_push(Push& p, int32_t rope) const {
    if (rope < 0) {
      p.u(0).u(0).u(0).f(0);
      return;
    }
    const Node& r = node(rope);
    p.u(1).u(node(r.inputs[2]).cols).u(r.attrs.i("pairs", 0) != 0).f(r.attrs.f("attn_factor", 1.0));
  }

  // --- kernels ---

  Kernel matvec(int32_t at, const MatvecSpec& m) {
    const DeviceWeight& dw = p_.weights[size_t(m.wi)];
    const uint32_t nrows = (m.glu ? 2 : 1) * t_.matvec_rows;  // weight rows per row group
    // gemv.comp: x in shared memory next to the reduction scratch ((weight rows + 1) x wg floats) and
    // wg_sum's (wg floats).
    auto [gtpr, gch] = t_.matvec_legacy ? std::pair<uint32_t, uint32_t>{0, 0} : gemv_shape(t_, dw.dtype, dw.cols);
    const uint32_t gwg = std::max(gtpr, t_.matvec_wg);
    // gemv_i8 (quantized weights, K a whole number of 32-value blocks): x as int8, the 16-byte halves
    // of block b at b (values 0..15) and hoff + b (16..31), hoff = nb rounded up to 8, plus 4 (the two
    // halves of a block land 64 bytes apart in the banks); a vec2 (d, d * sum q) per block.
    const bool i8 = t_.matvec_int8 && (dw.dtype == DType::Q4 || dw.dtype == DType::Q4M || dw.dtype == DType::Q8) &&
                    dw.cols % 32 == 0;
    const uint32_t nb = uint32_t(dw.cols / 32), hoff = (nb + 7) / 8 * 8 + 4;
    const uint32_t xs4 = i8 ? hoff + nb : uint32_t((dw.cols / 4 + 7) / 8 * 8);  // float: whole swizzle groups
    const uint64_t x_bytes = i8 ? uint64_t(xs4) * 16 + uint64_t(xs4 / 2) * 8 : uint64_t(xs4) * 16;
    const bool gemv = gtpr > 0 && x_bytes + (uint64_t(nrows) + 2) * gwg * 4 <= t_.max_shared;
    Kernel k;
    uint32_t tpr = 0, wg = 0;
    if (gemv) {
      tpr = gtpr, wg = gwg;
      k = kernel(at, i8 ? "gemv_i8" : "gemv", {wg, wtype(dw.dtype), t_.matvec_rows, m.glu ? 1u : 0u, tpr, gch, xs4},
                 true);
    } else {
      tpr = matvec_tpr(t_, dw.cols), wg = std::max(tpr, t_.matvec_wg);
      // x in shared memory when it fits next to the reduction scratch: (weight rows + 1) x wg floats for
      // the row groups, wg for wg_sum (reduce.glsl).
      const uint64_t red_bytes = (uint64_t(nrows) + 2) * wg * 4;
      const bool shared_x = t_.matvec_shared_x && is_quantized(dw.dtype) && dw.cols % 32 == 0 &&
                            uint64_t(dw.cols) * 4 + red_bytes <= t_.max_shared;
      const uint32_t xs4 = shared_x ? uint32_t(dw.cols / 4) : 1u;
      k = kernel(at, "matvec", {wg, wtype(dw.dtype), t_.matvec_rows, m.glu ? 1u : 0u, tpr, xs4}, true);
    }
    k.bind[kBindW] = wref(m.wi);
    k.bind[kBindX] = value(m.x);
    k.reads = {value(m.x)};
    const Binding outs[3] = {kBindY, kBindY1, kBindY2};
    for (int i = 0; i < 3; ++i)
      if (m.outs[size_t(i)] >= 0) {
        k.bind[outs[i]] = value(m.outs[size_t(i)]);
        k.writes.push_back(value(m.outs[size_t(i)]));
      }
    if (m.res >= 0) k.bind[kBindR] = value(m.res), k.reads.push_back(value(m.res));
    if (m.norm_w >= 0) k.bind[kBindV0] = wref(m.norm_w);
    if (m.bias >= 0) k.bind[kBindV1] = wref(m.bias);
    uint32_t flags = (dw.scale_f32 ? kScaleF32 : 0) | (m.bias >= 0 ? kBias : 0) | (m.res >= 0 ? kRes : 0) |
                     (m.norm_w >= 0 ? kNorm : 0) | (m.add_one ? kNormAddOne : 0);
    const int64_t x = node(m.x).rows;
    const uint32_t nr = wg / tpr * t_.matvec_rows, max_x = t_.max_groups_x;  // rows per workgroup
    k.launch = [m, dw, flags, x, nr, max_x](const StepDims& d, Launch& l) {
      Push(l).u(dw.cols).u(m.n_out).u(m.n0).u(m.n1).u(m.lds[0]).u(m.lds[1]).u(m.lds[2]).u(m.w_row0).u(m.glu_off)
          .u(dw.group).u(dw.soff_words).u(dw.moff_words).u(flags).u(m.act).f(m.eps);
      const uint32_t blocks = div_up(m.n_out, nr), gx = std::min(blocks, max_x);
      l.groups = {gx, rows_of(x, d), div_up(blocks, gx)};
    };
    return k;
  }

  Kernel tiled_matmul(int32_t n, int wi, uint32_t w_row0, int bias) {
    const DeviceWeight& dw = p_.weights[size_t(wi)];
    Kernel k = kernel(n, "matmul", {256, wtype(dw.dtype)});
    const int32_t xid = node(n).inputs[0];
    k.bind[kBindW] = wref(wi);
    k.bind[kBindX] = value(xid);
    k.bind[kBindY] = value(n);
    if (bias >= 0) k.bind[kBindV1] = wref(bias);
    k.reads = {value(xid)};
    k.writes = {value(n)};
    const uint32_t flags = (bias >= 0 ? 1u : 0u) | (dw.scale_f32 ? kScaleF32 : 0u);
    const uint32_t N = uint32_t(node(n).cols);
    const int64_t x = node(xid).rows;
    k.launch = [dw, flags, N, x, w_row0](const StepDims& d, Launch& l) {
      const uint32_t T = rows_of(x, d);
      Push(l).u(dw.cols).u(N).u(T).u(N).u(w_row0).u(dw.group).u(dw.soff_words).u(dw.moff_words).u(flags);
      l.groups = {div_up(N, 64), div_up(T, 64), 1};
    };
    return k;
  }

  // The weight and first row a matmul node uses: its group's concatenation when it has one.
  std::pair<int, uint32_t> matmul_weight(int32_t n) {
    const int gi = group_of_[size_t(n)];
    if (gi < 0) return {weight({node(node(n).inputs[1]).name}, false), 0};
    const Group& gr = groups_[size_t(gi)];
    uint32_t row0 = 0;
    for (int32_t m : gr.mm) {
      if (m == n) break;
      row0 += uint32_t(node(m).cols);
    }
    return {gr.wi, row0};
  }
  int bias_of(int32_t n) {
    const Node& nd = node(n);
    return nd.inputs.size() > 2 && nd.inputs[2] >= 0 ? vec(nd.inputs[2]) : -1;
  }

  void emit_group(const Group& gr) {
    MatvecSpec m;
    const Node& first = node(gr.mm[0]);
    m.x = first.inputs[0];
    m.wi = gr.wi;
    if (gr.norm >= 0) {
      const Node& nrm = node(gr.norm);
      m.x = nrm.inputs[0];
      m.norm_w = vec(nrm.inputs[1]);
      m.eps = nrm.attrs.f("eps");
      m.add_one = nrm.attrs.i("add_one", 0) != 0;
    }
    if (first.inputs.size() > 2 && first.inputs[2] >= 0) {
      std::vector<std::string> names;
      for (int32_t mm : gr.mm) names.push_back(node(node(mm).inputs[2]).name);
      m.bias = weight(names, true);
    }
    const uint32_t N0 = uint32_t(first.cols);
    if (gr.glu_mul >= 0) {
      m.glu = true;
      m.n_out = m.n0 = N0;
      m.glu_off = N0;
      m.act = node(gr.glu_act).op == Op::Silu ? 0 : node(gr.glu_act).op == Op::Gelu ? 1 : 2;
      m.outs[0] = gr.glu_mul;
      m.lds[0] = N0;
    } else if (gr.res_add >= 0) {
      m.n_out = m.n0 = N0;
      m.outs[0] = gr.res_add;
      m.lds[0] = N0;
      m.res = gr.res;
    } else {
      for (size_t i = 0; i < gr.mm.size(); ++i) {
        m.outs[i] = gr.mm[i];
        m.lds[i] = uint32_t(node(gr.mm[i]).cols);
        m.n_out += m.lds[i];
      }
      m.n0 = m.lds[0];
      m.n1 = m.lds[1];
    }
    Kernel k = matvec(gr.mm[0], m);
    for (int32_t a : {gr.norm, gr.glu_act, gr.glu_mul, gr.res_add})
      if (a >= 0) k.label += "+" + (node(a).name.empty() ? std::string(op_name(node(a).op)) : node(a).name);
    for (size_t i = 1; i < gr.mm.size(); ++i) k.label += "+" + node(gr.mm[i]).name;
    p_.small.push_back(std::move(k));
  }

  void emit(int32_t n, bool small, std::vector<Kernel>& out) {
    const Node& nd = node(n);
    const auto in = [&](size_t i) { return i < nd.inputs.size() ? nd.inputs[i] : -1; };
    const uint32_t C = uint32_t(nd.cols);
    switch (nd.op) {
      case Op::Embed: {
        const int wi = weight({node(in(0)).name}, false);
        const DeviceWeight& dw = p_.weights[size_t(wi)];
        Kernel k = kernel(n, "embed", {64, wtype(dw.dtype)});
        k.bind[kBindW] = wref(wi);
        k.bind[kBindY] = value(n);
        k.bind[kBindStep] = {Ref::Step, 0};
        k.writes = {value(n)};
        k.launch = [dw, C](const StepDims& d, Launch& l) {
          Push(l).u(C).u(dw.group).u(dw.soff_words).u(dw.moff_words).u(dw.scale_f32 ? kScaleF32 : 0);
          l.groups = {div_up(C, 64), d.T, 1};
        };
        if (std::find(p_.embeds.begin(), p_.embeds.end(), n) == p_.embeds.end()) p_.embeds.push_back(n);
        out.push_back(std::move(k));
        return;
      }
      case Op::MatMul: {
        auto [wi, row0] = matmul_weight(n);
        const int bias = bias_of(n);
        if (!small) {
          out.push_back(tiled_matmul(n, wi, row0, bias));
          return;
        }
        MatvecSpec m;
        m.x = in(0);
        m.wi = wi;
        m.w_row0 = row0;
        m.n_out = m.n0 = m.lds[0] = C;
        m.outs[0] = n;
        m.bias = bias;
        out.push_back(matvec(n, m));
        return;
      }
      case Op::RmsNorm: {
        const uint32_t G = uint32_t(nd.attrs.i("group", C));
        const uint32_t wg = G <= 64 ? 64 : G <= 128 ? 128 : 256;
        Kernel k = kernel(n, "rms_norm", {wg}, true);
        k.bind[kBindX] = value(in(0));
        k.bind[kBindY] = value(n);
        const bool has_w = in(1) >= 0;
        if (has_w) k.bind[kBindV0] = wref(vec(in(1)));
        k.reads = {value(in(0))};
        k.writes = {value(n)};
        const double eps = nd.attrs.f("eps");
        const bool add_one = nd.attrs.i("add_one", 0) != 0;
        const int64_t x = node(in(0)).rows;
        k.launch = [C, G, has_w, add_one, eps, x](const StepDims& d, Launch& l) {
          Push(l).u(C).u(G).u(has_w).u(add_one).f(eps);
          l.groups = {C / G, rows_of(x, d), 1};
        };
        out.push_back(std::move(k));
        return;
      }
      case Op::Add:
      case Op::Mul: {
        Kernel k = kernel(n, "binary", {256});
        const Node& b = node(in(1));
        const bool broadcast = b.op == Op::Weight;
        k.bind[kBindX] = value(in(0));
        k.bind[kBindR] = broadcast ? wref(vec(in(1))) : value(in(1));
        k.bind[kBindY] = value(n);
        k.reads = {value(in(0))};
        if (!broadcast) k.reads.push_back(value(in(1)));
        k.writes = {value(n)};
        const bool mul = nd.op == Op::Mul;
        const int64_t a = node(in(0)).rows;
        k.launch = [C, mul, broadcast, a](const StepDims& d, Launch& l) {
          const uint64_t count = uint64_t(rows_of(a, d)) * C;
          Push(l).u(count).u(C).u(mul).u(broadcast);
          l.groups = stride_grid(count, 256);
        };
        out.push_back(std::move(k));
        return;
      }
      case Op::Scale:
      case Op::Silu:
      case Op::Gelu:
      case Op::GeluTanh:
      case Op::Sigmoid:
      case Op::Softplus:
      case Op::Tanh:
      case Op::SoftCap: {
        Kernel k = kernel(n, "unary", {256});
        k.bind[kBindX] = value(in(0));
        k.bind[kBindY] = value(n);
        k.reads = {value(in(0))};
        k.writes = {value(n)};
        const uint32_t op = uint32_t(unary_code(nd.op));
        const double param = nd.op == Op::Scale ? nd.attrs.f("scale") : nd.op == Op::SoftCap ? nd.attrs.f("cap") : 0.0;
        const int64_t x = node(in(0)).rows;
        k.launch = [C, op, param, x](const StepDims& d, Launch& l) {
          const uint64_t count = uint64_t(rows_of(x, d)) * C;
          Push(l).u(count).u(op).f(param);
          l.groups = stride_grid(count, 256);
        };
        out.push_back(std::move(k));
        return;
      }
      case Op::Slice:
        out.push_back(copy(n, in(0), C, uint32_t(node(in(0)).cols), uint32_t(nd.attrs.i("start")), 0, false));
        return;
      case Op::Concat: {
        uint32_t off = 0;
        for (int32_t part : nd.inputs) {
          const uint32_t pc = uint32_t(node(part).cols);
          out.push_back(copy(n, part, pc, pc, 0, off, false));
          off += pc;
        }
        return;
      }
      case Op::OutputRows:
        out.push_back(copy(n, in(0), C, C, 0, 0, true));
        return;
      case Op::Rope: {
        Kernel k = kernel(n, "rope", {64});
        k.bind[kBindX] = value(in(0));
        k.bind[kBindY] = value(n);
        k.bind[kBindV0] = wref(vec(in(2)));
        k.bind[kBindStep] = {Ref::Step, 0};
        k.reads = {value(in(0))};
        k.writes = {value(n)};
        const uint32_t D = uint32_t(nd.attrs.i("head_dim")), F = uint32_t(node(in(2)).cols);
        const bool pairs = nd.attrs.i("pairs", 0) != 0;
        const double factor = nd.attrs.f("attn_factor", 1.0);
        k.launch = [C, D, F, pairs, factor](const StepDims& d, Launch& l) {
          Push(l).u(C).u(D).u(F).u(pairs).u(d.max_batch).f(factor);
          l.groups = {div_up(uint64_t(C / D) * (D - F), 64), d.T, 1};
        };
        out.push_back(std::move(k));
        return;
      }
      case Op::Attention:
        attention(n, out);
        return;
      default: fail("Vulkan: cannot run op ", op_name(nd.op));
    }
  }

  // y[r, yoff + c] = x[r, xoff + c] for c < len (gather: x row = the step's r-th output row).
  Kernel copy(int32_t n, int32_t x, uint32_t len, uint32_t ldx, uint32_t xoff, uint32_t yoff, bool gather) {
    Kernel k = kernel(n, "copy", {64});
    k.bind[kBindX] = value(x);
    k.bind[kBindY] = value(n);
    k.bind[kBindStep] = {Ref::Step, 0};
    k.reads = {value(x)};
    k.writes = {value(n)};
    const uint32_t ldy = uint32_t(node(n).cols);
    const int64_t y = node(n).rows;
    k.launch = [len, ldx, xoff, ldy, yoff, gather, y](const StepDims& d, Launch& l) {
      Push(l).u(len).u(ldx).u(xoff).u(ldy).u(yoff).u(gather).u(d.max_batch);
      l.groups = {div_up(len, 64), rows_of(y, d), 1};
    };
    return k;
  }

  void attention(int32_t n, std::vector<Kernel>& out) {
    const Node& nd = node(n);
    const int64_t s = nd.attrs.i("state");
    p_.states.insert(s);
    const KvGeometry geo = kv_geometry(g_, s, s_.config);
    const uint32_t KVH = uint32_t(geo.kv_heads), D = uint32_t(geo.head_dim), DV = uint32_t(geo.v_head_dim);
    const uint32_t cap = uint32_t(geo.cap), ring = geo.ring;
    const Ref kc{Ref::KCache, int32_t(s)}, vc{Ref::VCache, int32_t(s)}, pc{Ref::PosCache, int32_t(s)};
    const auto folded = [&](const std::map<int32_t, int32_t>& m) { return m.count(n) ? m.at(n) : -1; };
    const int32_t rope_q = folded(rope_q_), rope_k = folded(rope_k_);
    if (nd.attrs.i("write", 1)) {
      Kernel k = kernel(n, "kv_write", {64, uint32_t(geo.half)});
      const int32_t kin = rope_k >= 0 ? node(rope_k).inputs[0] : nd.inputs[1];
      k.bind[kBindX] = value(kin);
      k.bind[kBindR] = value(nd.inputs[2]);
      k.bind[kBindStep] = {Ref::Step, 0};
      k.bind[kBindKC] = kc, k.bind[kBindVC] = vc, k.bind[kBindPos] = pc;
      if (rope_k >= 0) k.bind[kBindV0] = wref(vec(node(rope_k).inputs[2]));
      k.reads = {value(kin), value(nd.inputs[2])};
      k.writes = {kc, vc, pc};
      Launch rope_words;
      Push rp(rope_words);
      rope_push(rp, rope_k);
      k.launch = [KVH, D, DV, cap, ring, rope_words](const StepDims& d, Launch& l) {
        Push(l).u(KVH).u(D).u(DV).u(cap).u(ring).u(d.max_batch).u(rope_words.push[0]).u(rope_words.push[1])
            .u(rope_words.push[2]).u(rope_words.push[3]);
        // A step of one token: the attention kernel stores k and v itself (no launch here).
        l.groups = {d.T == 1 ? 0 : div_up(uint64_t(KVH) * std::max(D, DV), 64), d.T, 1};
      };
      k.label += ".kv_write";
      out.push_back(std::move(k));
    }
    Kernel k = kernel(n, "attention", {256, uint32_t(geo.half)}, true);
    const int32_t qin = rope_q >= 0 ? node(rope_q).inputs[0] : nd.inputs[0];
    k.bind[kBindX] = value(qin);
    k.bind[kBindY] = value(n);
    k.bind[kBindStep] = {Ref::Step, 0};
    k.bind[kBindKC] = kc, k.bind[kBindVC] = vc, k.bind[kBindPos] = pc;
    if (rope_q >= 0) k.bind[kBindV0] = wref(vec(node(rope_q).inputs[2]));
    k.reads = {value(qin), kc, vc, pc};
    k.writes = {value(n)};
    // Steps of one token store k and v here (attention.comp, fused).
    const bool writes = nd.attrs.i("write", 1) != 0;
    Launch krope_words;
    Push krp(krope_words);
    rope_push(krp, writes ? rope_k : -1);
    if (writes) {
      const int32_t kin = rope_k >= 0 ? node(rope_k).inputs[0] : nd.inputs[1];
      k.bind[kBindY1] = value(kin);
      k.bind[kBindR] = value(nd.inputs[2]);
      if (rope_k >= 0) k.bind[kBindV1] = wref(vec(node(rope_k).inputs[2]));
      k.reads.push_back(value(kin));
      k.reads.push_back(value(nd.inputs[2]));
      k.writes.insert(k.writes.end(), {kc, vc, pc});
    }
    const uint32_t H = uint32_t(nd.attrs.i("heads")), window = uint32_t(nd.attrs.i("window", 0));
    const double scale = nd.attrs.f("scale"), softcap = nd.attrs.f("softcap", 0);
    // Decode steps split the cache's slots into runs of `split` (one workgroup each) when that makes
    // more than one run.
    const uint32_t split = t_.attn_split, nsplit = split ? uint32_t(div_up(cap, split)) : 1;
    if (nsplit > 1) {
      k.bind[kBindW] = {Ref::AttnScratch, 0};
      k.bind[kBindY2] = {Ref::AttnCount, 0};
      k.writes.push_back({Ref::AttnScratch, 0});
      p_.attn_scratch_floats =
          std::max<uint64_t>(p_.attn_scratch_floats, uint64_t(kSmallStep) * H * nsplit * (2 + DV));
      p_.attn_counters = std::max<uint64_t>(p_.attn_counters, uint64_t(kSmallStep) * H);
    }
    Launch rope_words;
    Push rp(rope_words);
    rope_push(rp, rope_q);
    k.launch = [H, KVH, D, DV, cap, ring, window, scale, softcap, rope_words, writes, krope_words, split,
                nsplit](const StepDims& d, Launch& l) {
      // Prefill has T * H workgroups already. Runs past the step's last position would be empty; not
      // launching them changes no result (empty runs add nothing to the combination, and one run
      // writes its output as the combination of one would).
      uint32_t runs = 1;
      if (d.T <= kSmallStep && nsplit > 1)
        runs = d.ctx ? std::clamp<uint32_t>(div_up(std::min(cap, d.ctx), split), 1, nsplit) : nsplit;
      Push(l).u(H).u(KVH).u(D).u(DV).u(cap).u(ring).u(window).u(d.max_batch).f(scale).f(softcap)
          .u(rope_words.push[0]).u(rope_words.push[1]).u(rope_words.push[2]).u(rope_words.push[3])
          .u(writes && d.T == 1).u(krope_words.push[0]).u(krope_words.push[1]).u(krope_words.push[2])
          .u(krope_words.push[3]).u(split).u(runs);
      l.groups = {H, d.T, runs};
    };
    out.push_back(std::move(k));
  }

  const SegmentSpec& s_;
  const Graph& g_;
  const WeightStore& w_;
  Tuning t_;
  Program p_;
  std::vector<int32_t> seg_index_;
  std::vector<std::vector<int32_t>> users_;
  std::vector<bool> is_output_;
  std::vector<int> group_of_;
  std::vector<Group> groups_;
  std::vector<bool> rope_folded_;
  std::map<int32_t, int32_t> rope_q_, rope_k_;  // attention -> the rope folded into it
  std::map<std::string, int> weight_index_;
};

}  // namespace

std::string DeviceWeight::key() const {
  std::string k = f32 ? "f32:" : "";
  for (size_t i = 0; i < names.size(); ++i) k += (i ? "|" : "") + names[i];
  return k;
}

DeviceWeight describe_weight(const WeightStore& w, std::vector<std::string> names, bool f32) {
  ELM_CHECK(!names.empty(), "Vulkan: a device weight needs a tensor");
  DeviceWeight d;
  d.names = std::move(names);
  d.f32 = f32;
  if (f32) {
    int64_t n = 0;
    for (const auto& name : d.names) n += w.get(name).numel();
    d.rows = 1, d.cols = n, d.bytes = size_t(n) * 4;
    return d;
  }
  const TensorView& first = w.get(d.names[0]);
  d.dtype = first.dtype;
  d.cols = first.cols();
  ELM_CHECK(matrix_type(d.dtype), "Vulkan: weights of type ", dtype_name(d.dtype), " are not supported");
  for (const auto& name : d.names) {
    const TensorView& t = w.get(name);
    ELM_CHECK(t.dtype == d.dtype && t.cols() == d.cols &&
                  (!is_quantized(t.dtype) || (t.group == first.group && t.scale_dtype == first.scale_dtype)),
              "Vulkan: cannot concatenate tensor '", name, "' with '", d.names[0], "'");
    d.rows += t.rows();
  }
  if (is_quantized(d.dtype)) {
    const QuantLayout l = quant_layout(d.dtype, d.rows, d.cols, first.group, first.scale_dtype);
    d.group = first.group;
    d.scale_f32 = first.scale_dtype == DType::F32;
    d.soff_words = uint32_t(l.scales_offset / 4);
    d.moff_words = uint32_t(l.mins_offset / 4);
    d.bytes = l.total_bytes;
  } else {
    d.bytes = size_t(d.rows * d.cols) * dtype_size(d.dtype);
  }
  return d;
}

std::span<const uint8_t> weight_bytes(const WeightStore& w, const DeviceWeight& d, std::vector<uint8_t>& scratch) {
  if (d.f32) {
    scratch.resize(d.bytes);
    size_t off = 0;
    for (const auto& name : d.names) {
      const std::vector<float> v = to_f32(w.get(name));
      std::memcpy(scratch.data() + off, v.data(), v.size() * 4);
      off += v.size() * 4;
    }
    return scratch;
  }
  if (d.names.size() == 1) {
    const TensorView& t = w.get(d.names[0]);
    return {static_cast<const uint8_t*>(t.data), t.nbytes};
  }
  scratch.assign(d.bytes, 0);
  if (!is_quantized(d.dtype)) {
    size_t off = 0;
    for (const auto& name : d.names) {
      const TensorView& t = w.get(name);
      std::memcpy(scratch.data() + off, t.data, t.nbytes);
      off += t.nbytes;
    }
    return scratch;
  }
  // Quantized: each plane of every tensor goes after the same plane of the tensors before it.
  const QuantLayout total = quant_layout(d.dtype, d.rows, d.cols, d.group, d.scale_f32 ? DType::F32 : DType::F16);
  size_t q_off = 0, s_off = 0;
  for (const auto& name : d.names) {
    const TensorView& t = w.get(name);
    const QuantLayout l = t.quant();
    const auto* src = static_cast<const uint8_t*>(t.data);
    const size_t scale_bytes = size_t(t.rows() * (t.cols() / t.group)) * dtype_size(t.scale_dtype);
    std::memcpy(scratch.data() + q_off, src, l.quant_bytes);
    std::memcpy(scratch.data() + total.scales_offset + s_off, src + l.scales_offset, scale_bytes);
    if (d.dtype == DType::Q4M)
      std::memcpy(scratch.data() + total.mins_offset + s_off, src + l.mins_offset, scale_bytes);
    q_off += l.quant_bytes;
    s_off += scale_bytes;
  }
  return scratch;
}

KvGeometry kv_geometry(const Graph& g, int64_t state, const RuntimeConfig& c) {
  const Attrs& a = g.states[size_t(state)].attrs;
  KvGeometry k;
  const int64_t window = a.i("window");
  k.cap = window > 0 ? std::min<int64_t>(c.n_ctx, window + c.max_batch) : c.n_ctx;
  k.ring = window > 0 && window + c.max_batch < c.n_ctx;
  k.kv_heads = a.i("kv_heads");
  k.head_dim = a.i("head_dim");
  k.v_head_dim = a.i("v_head_dim", k.head_dim);
  k.half = c.kv_dtype == DType::F16;
  return k;
}

std::string unsupported_reason(const Graph& g, const WeightStore& w, int32_t id, const RuntimeConfig& c,
                               const Tuning& t) {
  const Node& n = g.nodes[size_t(id)];
  const auto act_bytes = [&](const Node& v) { return uint64_t(c.max_batch) * uint64_t(v.cols) * 4; };
  if (act_bytes(n) > t.max_range) return "activation larger than a storage buffer binding";
  for (int32_t in : n.inputs) {
    if (in < 0) continue;
    const Node& v = g.nodes[size_t(in)];
    if (v.op == Op::Weight) {
      if (v.rows == 1 && uint64_t(v.cols) * 4 > t.max_range) return "vector weight too large";
    } else if (act_bytes(v) > t.max_range) {
      return "activation larger than a storage buffer binding";
    }
  }
  const auto matrix_ok = [&](int32_t wnode) -> std::string {
    const TensorView& tv = w.get(g.nodes[size_t(wnode)].name);
    if (!matrix_type(tv.dtype)) return cat("weights of type ", dtype_name(tv.dtype));
    if (tv.nbytes > t.max_range) return "weight larger than a storage buffer binding";
    return "";
  };
  switch (n.op) {
    case Op::Embed: return matrix_ok(n.inputs[0]);
    case Op::MatMul: return matrix_ok(n.inputs[1]);
    case Op::RmsNorm:
    case Op::Add:
    case Op::Mul:
    case Op::Scale:
    case Op::Silu:
    case Op::Gelu:
    case Op::GeluTanh:
    case Op::Sigmoid:
    case Op::Softplus:
    case Op::Tanh:
    case Op::SoftCap:
    case Op::Slice:
    case Op::Concat:
    case Op::OutputRows: return "";
    case Op::Rope: return n.rows == kRowsT ? "" : "rope over output rows";
    case Op::Attention: {
      if (n.rows != kRowsT) return "attention over output rows";
      const KvGeometry geo = kv_geometry(g, n.attrs.i("state"), c);
      if (geo.head_dim > kMaxHeadDim || geo.v_head_dim > kMaxHeadDim) return "head_dim above 512";
      if (c.kv_dtype == DType::I8) return "int8 kv cache entries";
      if (geo.half && (geo.head_dim % 2 || geo.v_head_dim % 2)) return "f16 kv cache of an odd head_dim";
      const uint64_t cache = uint64_t(c.max_seqs) * uint64_t(geo.kv_heads) * uint64_t(geo.cap) *
                             uint64_t(std::max(geo.head_dim, geo.v_head_dim)) * geo.entry_bytes();
      if (cache > t.max_range) return "kv cache larger than a storage buffer binding";
      return "";
    }
    default: return cat("op ", op_name(n.op), " is not implemented");
  }
}

Program build_program(const SegmentSpec& spec, const Tuning& tuning) { return Builder(spec, tuning).build(); }

std::pair<uint32_t, uint32_t> gemv_shape(const Tuning& t, DType type, int64_t K) {
  const int64_t vpc = type == DType::F32 ? 4 : (type == DType::F16 || type == DType::BF16) ? 8 : type == DType::Q8 ? 16 : 32;
  if (!matrix_type(type) || K <= 0 || K % vpc != 0) return {0, 0};
  const int64_t chunks = K / vpc, per = std::max<int64_t>(t.matvec_blocks, 1);
  uint32_t tpr = t.matvec_tpr;
  if (!tpr) {
    tpr = 32;
    while (tpr < 256 && int64_t(tpr) * 2 * per <= chunks) tpr *= 2;
  }
  const int64_t ch = std::min<int64_t>(per, (chunks + tpr - 1) / tpr);
  return {tpr, uint32_t(ch)};
}

uint32_t matvec_tpr(const Tuning& t, int64_t K) {
  if (t.matvec_tpr) return t.matvec_tpr;
  const int64_t lanes = (K + 31) / 32 / std::max<int64_t>(t.matvec_blocks, 1);
  uint32_t tpr = 32;
  while (tpr < 256 && int64_t(tpr) * 2 <= lanes) tpr *= 2;
  return tpr;
}

}  // namespace elm::vk
