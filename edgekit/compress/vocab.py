"""Vocabulary pruning: keep only the token embeddings a corpus uses (and the special tokens).

In small encoders the word embeddings are most of the model (MiniLM-L6: 11.7 M of 22.7 M parameters),
and neither dropping layers nor pruning heads touches them. Texts of the corpus tokenize to the same
tokens as before; a word the corpus never used may split differently or become the unknown token.
WordPiece tokenizers (a `vocab.txt`, as BERT-class models have) are rebuilt in the new order, and every
text of the corpus is checked to tokenize to the same tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.compress.common import CompressResult, publish, scores, source_logits
from edgekit.data import read_data, read_text_rows
from edgekit.errors import ConversionError, UsageError
from edgekit.progress import SILENT, Progress
from edgekit.sources import load
from edgekit.spec import TensorSpec

WORDPIECE = ("BertTokenizer", "BertTokenizerFast", "DistilBertTokenizer", "DistilBertTokenizerFast")


def prune_vocabulary(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    inputs: tuple[TensorSpec, ...] = (),
    progress: Progress = SILENT,
) -> CompressResult:
    """Keep the embeddings of the tokens `data` (CSV/JSONL text) uses; write a Hugging Face folder."""
    import torch

    from edgekit.compress.save import save_hf
    from edgekit.data import load_tokenizer

    out = Path(out)
    with progress.step(f"load {model}"):
        source = load(model, inputs)
    tokenizer = load_tokenizer(source.tokenizer_dir) if source.kind == "hf" and source.tokenizer_dir else None
    if tokenizer is None or type(tokenizer).__name__ not in WORDPIECE:
        kind = f" with a {type(tokenizer).__name__}" if tokenizer is not None else ""
        raise UsageError(
            f"Vocabulary pruning takes a Hugging Face model with a WordPiece (BERT-class) tokenizer; "
            f"{model} is a {source.kind} source{kind}.",
            hint="Give the model's Hugging Face folder, with its tokenizer.",
        )
    texts, _ = read_text_rows(Path(data))
    if not texts:
        raise UsageError(f"{data} holds no text to collect the vocabulary from.")
    encoded = [tokenizer(t)["input_ids"] for t in texts]
    keep = sorted({i for ids in encoded for i in ids} | set(tokenizer.all_special_ids))
    new_id = {old: new for new, old in enumerate(keep)}
    hf = source.obj.model
    validation = read_data(val, source.signature, source.tokenizer_dir) if val else None
    before = scores(source_logits(source, validation), validation.labels) if validation else None
    params_before = sum(p.numel() for p in hf.parameters())

    old = hf.get_input_embeddings()
    pad = new_id.get(old.padding_idx) if old.padding_idx is not None else None
    embedding = torch.nn.Embedding(len(keep), old.embedding_dim, padding_idx=pad)
    embedding.weight.data = old.weight.data[torch.tensor(keep)].clone()
    hf.set_input_embeddings(embedding)
    hf.config.vocab_size = len(keep)
    if getattr(hf.config, "pad_token_id", None) is not None:
        hf.config.pad_token_id = new_id[hf.config.pad_token_id]
    record: dict[str, Any] = {
        "method": "vocabulary",
        "tokens_before": len(tokenizer),
        "tokens_after": len(keep),
        "parameters_before": params_before,
        "parameters_after": sum(p.numel() for p in hf.parameters()),
        "source": {"path": source.source, "sha256": source.source_hash},
        "data": {"path": str(data), "texts": len(texts)},
        "metrics_before": before,
    }

    def write(folder: Path) -> str:
        entry = save_hf(hf, None, folder)
        vocab = {token: i for i, token in enumerate(tokenizer.convert_ids_to_tokens(keep))}
        settings = (
            "do_lower_case",
            "unk_token",
            "sep_token",
            "pad_token",
            "cls_token",
            "mask_token",
            "tokenize_chinese_chars",
            "strip_accents",
        )
        rebuilt = type(tokenizer)(vocab=vocab, **{k: v for k, v in tokenizer.init_kwargs.items() if k in settings})
        rebuilt.model_max_length = tokenizer.model_max_length
        for text, ids in zip(texts, encoded):  # the corpus must tokenize exactly as before
            if rebuilt(text)["input_ids"] != [new_id[i] for i in ids]:
                raise ConversionError(f"The rebuilt tokenizer splits {text[:60]!r} differently; vocabulary not pruned.")
        rebuilt.save_pretrained(str(folder))
        if validation is not None and val is not None:  # the validation texts as a user will feed them
            pruned = load(folder, inputs)
            record["metrics_after"] = scores(
                source_logits(pruned, read_data(val, pruned.signature, folder)), validation.labels
            )
        return entry

    publish(out, write, record)
    return CompressResult(out, record)
