#!/usr/bin/env python3
"""Export an open_clip model to the two ONNX files `fastsam-track --text` uses, plus CLIP's BPE
vocabulary beside them.

Usage: python3 scripts/export-clip.py [--model ViT-B-32] [--pretrained openai | --random-weights]
                                      [--seed 0] [--out models/clip] [--opset 17]

Writes OUT/clip-image.onnx (images float32 [N,3,224,224] -> image_embeds float32 [N,D]),
OUT/clip-text.onnx (tokens int64 [N,77] -> text_embeds float32 [N,D]), both unnormalised and with
a dynamic batch axis, and OUT/bpe_simple_vocab_16e6.txt.gz (copied from the open_clip package,
MIT licence, originally OpenAI CLIP's), and reference_*.npy / reference_texts.json: torch's
embeddings of a few inputs, which `tests/model/clip.rs` compares the Rust encoders against when
FASTSAM_CLIP_EXPORT=OUT is set. Then:

    fastsam-track segment IMG --text "a photo of a dog" \
        --clip-image OUT/clip-image.onnx --clip-text OUT/clip-text.onnx

Needs: pip install open_clip_torch torch onnx (and onnxruntime for the self-check).
Any open_clip model works if it takes 224x224 images with CLIP's mean/std and uses CLIP's BPE
tokenizer with 77-token contexts (ViT-B-32, ViT-B-16, ViT-L-14, RN50, ... with OpenAI or LAION
weights); others (SigLIP, 336-pixel or HF-tokenizer models) are refused with the reason.
Weights are downloaded by open_clip on first use; their licence is the weights' own (OpenAI's
CLIP weights and the LAION open_clip weights are MIT).

--random-weights skips the download: the architecture's own random initialisation (seeded). The
files have the real model's shapes and cost, so they serve for timing and parity checks, but their
embeddings mean nothing: never use them to select objects.
"""
import argparse
import os
import shutil
import sys

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32", help="open_clip model name (default ViT-B-32)")
    ap.add_argument("--pretrained", default="openai", help="open_clip pretrained tag (default openai)")
    ap.add_argument("--out", default="models/clip", help="output folder (default models/clip)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--random-weights", action="store_true",
                    help="no pretrained weights (no download): random initialisation, for timing and parity only")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random-weights and of the reference inputs")
    a = ap.parse_args()

    try:
        import torch
        import open_clip
    except ImportError as e:
        sys.exit(f"export-clip: {e}. Install the exporter's dependencies: pip install open_clip_torch torch onnx")

    torch.manual_seed(a.seed)
    pretrained = None if a.random_weights else a.pretrained
    model, _, _ = open_clip.create_model_and_transforms(a.model, pretrained=pretrained)
    model.eval()
    tokenizer = open_clip.get_tokenizer(a.model)

    # refuse what fastsam-track's preprocessing and tokenizer do not reproduce
    size = getattr(model.visual, "image_size", 224)
    size = size if isinstance(size, int) else tuple(size)
    if size not in (224, (224, 224)):
        sys.exit(f"export-clip: {a.model} takes {size} images; fastsam-track feeds 224x224 (use a 224-pixel model)")
    cfg = open_clip.get_model_preprocess_cfg(model) if hasattr(open_clip, "get_model_preprocess_cfg") else {}
    mean, std = tuple(cfg.get("mean", CLIP_MEAN)), tuple(cfg.get("std", CLIP_STD))
    if any(abs(x - y) > 1e-6 for x, y in zip(mean + std, CLIP_MEAN + CLIP_STD)):
        sys.exit(f"export-clip: {a.model} normalises with mean {mean} / std {std}, not CLIP's; not supported")
    if type(tokenizer).__name__ != "SimpleTokenizer":
        sys.exit(f"export-clip: {a.model} uses {type(tokenizer).__name__}, not CLIP's BPE tokenizer; not supported")
    ctx = getattr(model, "context_length", 77)
    if ctx != 77:
        sys.exit(f"export-clip: {a.model} has a context length of {ctx}, not 77; not supported")

    class ImageEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, images):
            return self.m.encode_image(images)

    class TextEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, tokens):
            return self.m.encode_text(tokens)

    # nn.MultiheadAttention's inference fast path (eval + no_grad) is a fused op that the ONNX
    # exporter cannot write; the ordinary path computes the same thing
    if hasattr(torch.backends, "mha"):
        torch.backends.mha.set_fastpath_enabled(False)

    os.makedirs(a.out, exist_ok=True)
    img_path = os.path.join(a.out, "clip-image.onnx")
    txt_path = os.path.join(a.out, "clip-text.onnx")
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(a.seed))
    # the last ones exercise ftfy's clean-up (width, quotes, ligatures, entities, NFC, mojibake)
    texts = ["a photo of a dog", "a yellow bus", "Ｔhe “ﬁrst” café &amp; a cat",
             "a cafe\u0301 terrace", "a cafÃ© â€œterraceâ€\x9d", "ﾀｰﾝ sign\x85 ﬂuﬃeﬆ &amp;amp;amp;"]
    tokens = tokenizer(texts)
    with torch.no_grad():
        torch.onnx.export(ImageEncoder(model), (images,), img_path, input_names=["images"],
                          output_names=["image_embeds"], dynamic_axes={"images": {0: "N"}, "image_embeds": {0: "N"}},
                          opset_version=a.opset, dynamo=False)
        torch.onnx.export(TextEncoder(model), (tokens,), txt_path, input_names=["tokens"],
                          output_names=["text_embeds"], dynamic_axes={"tokens": {0: "N"}, "text_embeds": {0: "N"}},
                          opset_version=a.opset, dynamo=False)
        want_i = model.encode_image(images).numpy()
        want_t = model.encode_text(tokens).numpy()

    vocab = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    shutil.copyfile(vocab, os.path.join(a.out, "bpe_simple_vocab_16e6.txt.gz"))

    # torch's embeddings of the inputs above, for tests/model/clip.rs (FASTSAM_CLIP_EXPORT=OUT)
    import json
    import numpy
    numpy.save(os.path.join(a.out, "reference_images.npy"), images.numpy().astype(numpy.float32))
    numpy.save(os.path.join(a.out, "reference_image_embeds.npy"), want_i.astype(numpy.float32))
    numpy.save(os.path.join(a.out, "reference_tokens.npy"), tokens.numpy().astype(numpy.int64))
    numpy.save(os.path.join(a.out, "reference_text_embeds.npy"), want_t.astype(numpy.float32))
    with open(os.path.join(a.out, "reference_texts.json"), "w", encoding="utf-8") as f:
        json.dump({"model": a.model, "pretrained": pretrained, "seed": a.seed, "texts": texts,
                   "open_clip_version": getattr(open_clip, "__version__", "?"),
                   "torch_version": torch.__version__}, f, ensure_ascii=False, indent=1)

    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipped the self-check", file=sys.stderr)
    else:
        got_i = ort.InferenceSession(img_path).run(None, {"images": images.numpy()})[0]
        got_t = ort.InferenceSession(txt_path).run(None, {"tokens": tokens.numpy()})[0]
        di, dt = float(np.abs(got_i - want_i).max()), float(np.abs(got_t - want_t).max())
        print(f"self-check, ONNX Runtime vs torch: image {di:.2e}, text {dt:.2e} (max abs)")
        if max(di, dt) > 1e-3:
            sys.exit("export-clip: the ONNX files do not reproduce torch's embeddings")
    print(f"wrote {img_path}, {txt_path} and the BPE vocabulary (D = {want_i.shape[1]})")


if __name__ == "__main__":
    main()
