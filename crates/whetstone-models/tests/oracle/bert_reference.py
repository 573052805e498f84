"""Reference BERT forward pass for whetstone's pretrained-checkpoint parity tests.

Written from scratch over the checkpoint folder: config.json, and model.safetensors read
with numpy (8-byte little-endian header length, JSON header, raw little-endian data), so
it needs only numpy and torch -- not `transformers` or `safetensors`. It follows
`transformers`' BertModel (post-LayerNorm, exact erf GELU, additive attention mask) and
computes in float64, so it is the exact answer the float32 Rust model is compared to.

Usage: bert_reference.py MODEL_DIR INPUT_JSON OUTPUT_JSON

INPUT_JSON: {"input_ids": [[...]], "attention_mask": [[...]], "texts": [...] (optional)}
OUTPUT_JSON: {"shape": [B, T, H], "hidden": flat last-layer states, "pooled": flat
mean-pooled [B, H], "logits": flat [B, labels] when the folder has classifier.* weights
(pooled as config.json's whetstone_pooling), "token_ids": [[...]] when texts were given
(this script's own uncased BERT WordPiece over vocab.txt or tokenizer.json's vocab)}.
"""

import json
import math
import os
import sys
import unicodedata

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        name = name[len("bert."):] if name.startswith("bert.") else name
        out[name] = torch.from_numpy(arr.astype(np.float64) if arr.dtype.kind == "f" else arr.copy())
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def bert_forward(w, cfg, ids, mask):
    eps = cfg.get("layer_norm_eps", 1e-12)
    heads = cfg["num_attention_heads"]
    b, t = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids]
    x = x + w["embeddings.position_embeddings.weight"][torch.arange(t)][None]
    x = x + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    h = x.shape[-1]
    d = h // heads
    additive = (1.0 - mask.double())[:, None, None, :] * torch.finfo(torch.float64).min

    def lin(v, p):
        return v @ w[p + ".weight"].T + w[p + ".bias"]

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        split = lambda y: y.view(b, t, heads, d).transpose(1, 2)
        q = split(lin(x, p + "attention.self.query"))
        k = split(lin(x, p + "attention.self.key"))
        v = split(lin(x, p + "attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + additive
        ctx = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, h)
        a = lin(ctx, p + "attention.output.dense")
        x = layer_norm(x + a, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        x = layer_norm(x + f, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x


def pool(x, mask, how):
    m = mask.double()[:, :, None]
    if how == "cls":
        return x[:, 0]
    if how == "max":
        return x.masked_fill(m == 0, float("-inf")).amax(1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


# --- An independent uncased BERT WordPiece (BasicTokenizer + greedy longest match). ---

def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                                             (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])


def basic_tokens(text):
    clean = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        clean.append(" " if ch in " \t\n\r" or unicodedata.category(ch) == "Zs" else ch)
    text = "".join(f" {c} " if is_cjk(ord(c)) else c for c in clean)
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    out = []
    for word in text.split():
        cur = ""
        for ch in word:
            if is_punct(ch):
                if cur:
                    out.append(cur)
                out.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            out.append(cur)
    return out


def wordpiece(text, vocab):
    ids = [vocab["[CLS]"]]
    for word in basic_tokens(text):
        if len(word) > 100:
            ids.append(vocab["[UNK]"])
            continue
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                sub = ("##" if start > 0 else "") + word[start:end]
                if sub in vocab:
                    found = vocab[sub]
                    break
                end -= 1
            if found is None:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(found)
            start = end
        ids.extend(pieces)
    ids.append(vocab["[SEP]"])
    return ids


def load_vocab(model_dir):
    path = os.path.join(model_dir, "vocab.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return {line.rstrip("\n"): i for i, line in enumerate(f)}
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        return json.load(f)["model"]["vocab"]


def main():
    model_dir, input_path, output_path = sys.argv[1:4]
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("hidden_act", "gelu") != "gelu":
        sys.exit(f"reference implements hidden_act gelu only, not {cfg['hidden_act']}")
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    with open(input_path) as f:
        inp = json.load(f)
    ids = torch.tensor(inp["input_ids"], dtype=torch.int64)
    mask = torch.tensor(inp["attention_mask"], dtype=torch.int64)
    with torch.no_grad():
        x = bert_forward(w, cfg, ids, mask)
        out = {"shape": list(x.shape), "hidden": x.flatten().tolist(), "pooled": pool(x, mask, "mean").flatten().tolist()}
        if "classifier.weight" in w:
            feats = pool(x, mask, cfg.get("whetstone_pooling", "mean"))
            logits = feats @ w["classifier.weight"].T + w["classifier.bias"]
            out["logits"] = logits.flatten().tolist()
            out["num_labels"] = logits.shape[1]
    if inp.get("texts"):
        vocab = load_vocab(model_dir)
        out["token_ids"] = [wordpiece(t, vocab) for t in inp["texts"]]
    with open(output_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
