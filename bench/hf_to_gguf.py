#!/usr/bin/python3
"""Write a Llama-architecture Hugging Face checkpoint as a GGUF v3 file, so llama.cpp can run the
same weights elm runs (bench/run_bench.sh compares the two).

  hf_to_gguf.py HF_DIR OUT.gguf

Handles what bench models need: one model.safetensors (BF16/F16/F32), model_type "llama", tied or
untied embeddings, a byte-level BPE tokenizer.json. Matrices keep their dtype, vectors become F32
(llama.cpp's convention); Q and K rows are permuted to llama.cpp's interleaved RoPE order. Needs only
numpy (python3-numpy); not a general converter.
"""
import json, os, struct, sys
import numpy as np

GGUF_TYPES = {"F32": 0, "F16": 1, "BF16": 30}
NP_TYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}  # bf16 kept as raw bits
ALIGN = 32


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = data[base + b: base + e].view(NP_TYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
    return out


def to_f32(dtype, a):
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def permute_qk(w, n_head):  # HF rotate-half rows -> llama.cpp interleaved pairs, per head
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Writer:
    def __init__(self):
        self.kv, self.tensors = [], []

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    @staticmethod
    def string(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def value(self, vtype, v):
        if vtype == "str":
            return struct.pack("<I", 8) + self.string(v)
        if vtype == "u32":
            return struct.pack("<II", 4, v)
        if vtype == "f32":
            return struct.pack("<If", 6, v)
        if vtype == "bool":
            return struct.pack("<IB", 7, int(v))
        if vtype == "arr_str":
            return struct.pack("<IIQ", 9, 8, len(v)) + b"".join(self.string(s) for s in v)
        if vtype == "arr_i32":
            return struct.pack("<IIQ", 9, 5, len(v)) + np.asarray(v, dtype="<i4").tobytes()
        raise ValueError(vtype)

    def write(self, path):
        infos, offset = [], 0
        for name, gtype, arr in self.tensors:
            dims = list(reversed(arr.shape))
            infos.append(self.string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
                         + struct.pack("<IQ", gtype, offset))
            offset += (arr.nbytes + ALIGN - 1) // ALIGN * ALIGN
        head = b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        head += b"".join(self.string(k) + self.value(t, v) for k, t, v in self.kv) + b"".join(infos)
        with open(path, "wb") as f:
            f.write(head + b"\0" * (-len(head) % ALIGN))
            for _, _, arr in self.tensors:
                f.write(np.ascontiguousarray(arr).tobytes())
                f.write(b"\0" * (-arr.nbytes % ALIGN))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    c = json.load(open(os.path.join(src, "config.json")))
    assert c["model_type"] == "llama", "only llama-architecture checkpoints"
    h, heads, kv_heads = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = c.get("head_dim") or h // heads
    st = read_safetensors(os.path.join(src, "model.safetensors"))
    w = Writer()
    w.add("general.architecture", "str", "llama")
    w.add("general.name", "str", os.path.basename(os.path.normpath(src)))
    w.add("general.file_type", "u32", 32 if st["model.embed_tokens.weight"][0] == "BF16" else 0)
    w.add("llama.context_length", "u32", c.get("max_position_embeddings", 4096))
    w.add("llama.embedding_length", "u32", h)
    w.add("llama.block_count", "u32", c["num_hidden_layers"])
    w.add("llama.feed_forward_length", "u32", c["intermediate_size"])
    w.add("llama.attention.head_count", "u32", heads)
    w.add("llama.attention.head_count_kv", "u32", kv_heads)
    w.add("llama.rope.freq_base", "f32", float(c.get("rope_theta", 10000.0)))
    w.add("llama.rope.dimension_count", "u32", head_dim)
    w.add("llama.attention.layer_norm_rms_epsilon", "f32", float(c.get("rms_norm_eps", 1e-5)))
    w.add("llama.vocab_size", "u32", c["vocab_size"])

    tok = json.load(open(os.path.join(src, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    tokens = [None] * c["vocab_size"]
    for t, i in vocab.items():
        if i < len(tokens):
            tokens[i] = t
    types = [1] * len(tokens)
    for a in tok.get("added_tokens", []):
        if a["id"] < len(tokens):
            tokens[a["id"]] = a["content"]
            types[a["id"]] = 3 if a.get("special") else 4
    for i, t in enumerate(tokens):
        if t is None:
            tokens[i], types[i] = f"[PAD{i}]", 5
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add("tokenizer.ggml.model", "str", "gpt2")
    w.add("tokenizer.ggml.pre", "str", "smollm")
    w.add("tokenizer.ggml.tokens", "arr_str", tokens)
    w.add("tokenizer.ggml.token_type", "arr_i32", types)
    w.add("tokenizer.ggml.merges", "arr_str", merges)
    w.add("tokenizer.ggml.bos_token_id", "u32", c.get("bos_token_id", 1))
    w.add("tokenizer.ggml.eos_token_id", "u32", c.get("eos_token_id", 2))
    w.add("tokenizer.ggml.add_bos_token", "bool", False)

    def put(name, key):
        dtype, arr = st[key]
        if arr.ndim == 1:
            dtype, arr = "F32", to_f32(dtype, arr)
        elif key.endswith("q_proj.weight"):
            arr = permute_qk(arr, heads)
        elif key.endswith("k_proj.weight"):
            arr = permute_qk(arr, kv_heads)
        w.tensors.append((name, GGUF_TYPES[dtype], arr))

    put("token_embd.weight", "model.embed_tokens.weight")
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        for gguf, hf in [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                         ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                         ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                         ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]:
            put(f"blk.{l}.{gguf}.weight", p + hf + ".weight")
    put("output_norm.weight", "model.norm.weight")
    if "lm_head.weight" in st and not c.get("tie_word_embeddings", False):
        put("output.weight", "lm_head.weight")
    w.write(out)
    print(f"wrote {out}: {len(w.tensors)} tensors")


if __name__ == "__main__":
    main()
