#!/usr/bin/python3
"""Writes small seed inputs for the fuzz targets (stdlib only):
  make_seeds.py OUTDIR
OUTDIR/hf/            a 1-layer Llama checkpoint (config.json, model.safetensors), for `elm convert`
OUTDIR/safetensors/   safetensors files
OUTDIR/gguf/          GGUF v3 files: every metadata value type, F32 / F16 / Q8_0 / Q4_0 / Q4_1 tensors
"""
import json, os, random, struct, sys

V, H, I, HEADS, KV, D = 64, 32, 64, 2, 1, 16
rng = random.Random(0)

def llama_tensors():
    yield "model.embed_tokens.weight", (V, H)
    p = "model.layers.0."
    yield p + "input_layernorm.weight", (H,)
    yield p + "post_attention_layernorm.weight", (H,)
    yield p + "self_attn.q_proj.weight", (HEADS * D, H)
    yield p + "self_attn.k_proj.weight", (KV * D, H)
    yield p + "self_attn.v_proj.weight", (KV * D, H)
    yield p + "self_attn.o_proj.weight", (H, HEADS * D)
    yield p + "mlp.gate_proj.weight", (I, H)
    yield p + "mlp.up_proj.weight", (I, H)
    yield p + "mlp.down_proj.weight", (H, I)
    yield "model.norm.weight", (H,)

def numel(shape):
    n = 1
    for d in shape: n *= d
    return n

def values(name, shape):
    return [1.0] * numel(shape) if len(shape) == 1 else [rng.gauss(0, 0.1) for _ in range(numel(shape))]

def safetensors(tensors):  # name -> (dtype, shape, bytes)
    header, off, data = {}, 0, b""
    for name, (dt, shape, b) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b); data += b
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

def bf16(vals):
    out = b""
    for v in vals:
        u = struct.unpack("<I", struct.pack("<f", v))[0]
        out += struct.pack("<H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF)
    return out

def f16(v): return struct.pack("<e", v)

def ggml_blocks(vals, kind):
    out = b""
    for b in range(0, len(vals), 32):
        x = vals[b:b + 32]
        if kind == 8:  # Q8_0
            d = max(abs(v) for v in x) / 127 or 1.0
            out += f16(d) + bytes((round(v / d) & 0xFF) for v in x)
        else:  # Q4_0 (2) / Q4_1 (3)
            lo, hi = min(x), max(x)
            d = ((hi - lo) / 15 if kind == 3 else max(x, key=abs) / -8) or 1.0
            q = [min(15, max(0, round((v - lo) / d if kind == 3 else v / d + 8))) for v in x]
            out += f16(d) + (f16(lo) if kind == 3 else b"") + bytes(q[j] | q[j + 16] << 4 for j in range(16))
    return out

def gstr(s):
    b = s.encode(); return struct.pack("<Q", len(b)) + b

def gguf(kvs, tensors):  # kvs: [(key, type, payload)], tensors: [(name, shape, ggml type, bytes)]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, p in kvs: out += gstr(k) + struct.pack("<I", t) + p
    off, data = 0, b""
    for name, shape, t, b in tensors:
        out += gstr(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in reversed(shape))
        out += struct.pack("<IQ", t, off)
        pad = b + b"\0" * (-len(b) % 32); data += pad; off += len(pad)
    out += b"\0" * (-len(out) % 32)
    return out + data

def main():
    out = sys.argv[1]
    for d in ("hf", "safetensors", "gguf"): os.makedirs(os.path.join(out, d), exist_ok=True)
    weights = {n: (s, values(n, s)) for n, s in llama_tensors()}
    config = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=H, intermediate_size=I,
                  num_hidden_layers=1, num_attention_heads=HEADS, num_key_value_heads=KV, head_dim=D, vocab_size=V,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, max_position_embeddings=128,
                  bos_token_id=1, eos_token_id=2, hidden_act="silu")
    with open(os.path.join(out, "hf", "config.json"), "w") as f: json.dump(config, f)
    st = safetensors({n: ("BF16", s, bf16(v)) for n, (s, v) in weights.items()})
    open(os.path.join(out, "hf", "model.safetensors"), "wb").write(st)
    open(os.path.join(out, "safetensors", "llama.safetensors"), "wb").write(st)
    small = {"a": ("F32", (2, 3), struct.pack("<6f", *range(6))), "b": ("I32", (4,), struct.pack("<4i", 1, 2, 3, 4)),
             "c": ("F16", (1,), f16(0.5))}
    open(os.path.join(out, "safetensors", "small.safetensors"), "wb").write(safetensors(small))

    u32 = lambda v: struct.pack("<I", v)
    kvs = [("general.architecture", 8, gstr("llama")), ("general.alignment", 4, u32(32)),
           ("llama.context_length", 4, u32(128)), ("llama.embedding_length", 4, u32(H)),
           ("llama.block_count", 4, u32(1)), ("llama.feed_forward_length", 4, u32(I)),
           ("llama.attention.head_count", 4, u32(HEADS)), ("llama.attention.head_count_kv", 4, u32(KV)),
           ("llama.rope.dimension_count", 4, u32(D)), ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
           ("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
           ("tokenizer.ggml.model", 8, gstr("llama")),
           ("tokenizer.ggml.tokens", 9, u32(8) + struct.pack("<Q", V) + b"".join(gstr("t%d" % i) for i in range(V))),
           ("tokenizer.ggml.bos_token_id", 4, u32(1)), ("tokenizer.ggml.eos_token_id", 4, u32(2)),
           ("t.u8", 0, b"\x07"), ("t.i8", 1, b"\xff"), ("t.u16", 2, b"\x01\x02"), ("t.i16", 3, b"\xfe\xff"),
           ("t.i32", 5, struct.pack("<i", -3)), ("t.bool", 7, b"\x01"), ("t.u64", 10, struct.pack("<Q", 9)),
           ("t.i64", 11, struct.pack("<q", -9)), ("t.f64", 12, struct.pack("<d", 0.25)),
           ("t.nested", 9, u32(9) + struct.pack("<Q", 1) + u32(0) + struct.pack("<Q", 2) + b"\x01\x02")]
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for n in weights:
        if n.startswith("model.layers.0."): names[n] = "blk.0." + layer[n[len("model.layers.0."):-len(".weight")]] + ".weight"
    for label, kind in (("f32", 0), ("f16", 1), ("q8_0", 8), ("q4_0", 2), ("q4_1", 3)):
        tensors = []
        for n, (s, v) in weights.items():
            if len(s) == 1 or kind == 0: tensors.append((names[n], s, 0, struct.pack("<%df" % len(v), *v)))
            elif kind == 1: tensors.append((names[n], s, 1, b"".join(f16(x) for x in v)))
            else: tensors.append((names[n], s, kind, ggml_blocks(v, kind)))
        open(os.path.join(out, "gguf", "llama-%s.gguf" % label), "wb").write(gguf(kvs, tensors))

if __name__ == "__main__":
    main()
