"""Oracle: Hugging Face `transformers` itself on a BERT checkpoint folder.

usage: hf_transformers.py MODEL_DIR INPUT_JSON OUTPUT_JSON

Loads MODEL_DIR with `transformers.BertModel.from_pretrained` (offline; a `classifier.*` head in
the folder is read separately, since whetstone's head pools then classifies with no pooler in
between) and `AutoTokenizer` (the folder's tokenizer.json).

INPUT_JSON:  {"input_ids": [[...]], "attention_mask": [[...]], "texts": [...]}
OUTPUT_JSON: {"shape": [B, T, H], "hidden": flat last_hidden_state, "pooled": flat mean-pooled
[B, H], "logits": flat [B, labels] when the folder has classifier.* weights (pooled as
config.json's whetstone_pooling), "token_ids": [[...]] from AutoTokenizer when texts were given,
"transformers": version}
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def pool(x, mask, how):
    m = mask.unsqueeze(-1).to(x.dtype)
    if how == "cls":
        return x[:, 0]
    if how == "max":
        return x.masked_fill(m == 0, float("-inf")).max(dim=1).values
    return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)


def main():
    model_dir, input_json, output_json = sys.argv[1:4]
    req = json.load(open(input_json))
    model = transformers.BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager").eval()
    ids = torch.tensor(req["input_ids"], dtype=torch.long)
    mask = torch.tensor(req["attention_mask"], dtype=torch.long)
    with torch.no_grad():
        x = model(input_ids=ids, attention_mask=mask).last_hidden_state
    out = {"shape": list(x.shape), "hidden": x.flatten().tolist(), "pooled": pool(x, mask, "mean").flatten().tolist(), "transformers": transformers.__version__}
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    if "classifier.weight" in weights:
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        feats = pool(x, mask, cfg.get("whetstone_pooling", "mean"))
        logits = feats @ weights["classifier.weight"].T + weights["classifier.bias"]
        out["logits"] = logits.flatten().tolist()
    if req.get("texts"):
        tok = transformers.AutoTokenizer.from_pretrained(model_dir)
        out["token_ids"] = [tok(t)["input_ids"] for t in req["texts"]]
    json.dump(out, open(output_json, "w"))


if __name__ == "__main__":
    main()
