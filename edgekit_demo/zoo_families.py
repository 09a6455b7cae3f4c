"""Architectures people ship, built small from their Hugging Face configurations (random weights, no download):
the encoder families, ViT and causal LMs, each saved as a model folder that is a SOURCE.

The encoders share one shape on purpose: hidden size 64 with 64-token inputs, the coincidence of sequence
length and hidden size that a converter guessing layouts from shapes gets wrong. Their tokenizer is
MiniLM's (BERT's vocabulary): every family's vocabulary here is that size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.sources.hf_source import transformers_offline
from edgekit_demo.zoo_text import minilm_dir

HIDDEN, SEQUENCE, LABELS = 64, 64, 3
INPUTS = (f"input_ids:int64:1x{SEQUENCE}", f"attention_mask:int64:1x{SEQUENCE}")
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _encoder_args() -> dict[str, Any]:
    return dict(
        vocab_size=30522,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=2 * SEQUENCE,
        num_labels=LABELS,
    )


def _configs(t) -> dict[str, tuple[Any, Callable]]:
    """family -> (its configuration, the model class); t is the transformers module."""
    enc = _encoder_args()
    bert_ids = dict(pad_token_id=0, bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102)
    return {
        "bert": (t.BertConfig(**enc), t.BertForSequenceClassification),
        "distilbert": (
            t.DistilBertConfig(
                vocab_size=30522,
                dim=HIDDEN,
                n_layers=2,
                n_heads=4,
                hidden_dim=2 * HIDDEN,
                max_position_embeddings=2 * SEQUENCE,
                num_labels=LABELS,
            ),
            t.DistilBertForSequenceClassification,
        ),
        "mobilebert": (
            t.MobileBertConfig(
                **enc, embedding_size=32, intra_bottleneck_size=32, true_hidden_size=32, num_feedforward_networks=2
            ),
            t.MobileBertForSequenceClassification,
        ),
        "albert": (t.AlbertConfig(**enc, embedding_size=32), t.AlbertForSequenceClassification),
        "electra": (t.ElectraConfig(**enc, embedding_size=32), t.ElectraForSequenceClassification),
        # positions offset by the padding index: 2 of its 128 positions are never a token's
        "roberta": (t.RobertaConfig(**enc, pad_token_id=1), t.RobertaForSequenceClassification),
        "deberta-v2": (
            t.DebertaV2Config(
                **enc,
                type_vocab_size=0,
                relative_attention=True,
                position_buckets=32,
                pos_att_type=["p2c", "c2p"],
                position_biased_input=False,
            ),
            t.DebertaV2ForSequenceClassification,
        ),
        "modernbert": (
            t.ModernBertConfig(**enc, global_attn_every_n_layers=2, local_attention=16, **bert_ids),
            t.ModernBertForSequenceClassification,
        ),
        "vit": (
            t.ViTConfig(
                image_size=32,
                patch_size=8,
                num_channels=3,
                hidden_size=HIDDEN,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=2 * HIDDEN,
                num_labels=LABELS,
            ),
            t.ViTForImageClassification,
        ),
        "llama": (
            t.LlamaConfig(
                vocab_size=30522,
                hidden_size=HIDDEN,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=2 * HIDDEN,
                max_position_embeddings=2 * SEQUENCE,
            ),
            t.LlamaForCausalLM,
        ),
        "gpt2": (
            t.GPT2Config(vocab_size=30522, n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=2 * SEQUENCE),
            t.GPT2LMHeadModel,
        ),
    }


ENCODERS = ("bert", "distilbert", "mobilebert", "albert", "electra", "roberta", "deberta-v2", "modernbert")
FAMILIES = (*ENCODERS, "vit", "llama", "gpt2")


def build_family(family: str, folder: Path, seed: int = 0, **config: Any) -> Path:
    """Save a small random-initialised model of `family` (one of FAMILIES) with MiniLM's tokenizer in `folder`;
    `config` overrides settings of the family's configuration."""
    import torch

    transformers = transformers_offline("Building the model zoo")
    settings, cls = _configs(transformers)[family]
    settings.update(config)
    torch.manual_seed(seed)
    model = cls(settings).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if family != "vit":
        for name in _TOKENIZER_FILES:
            if (minilm_dir() / name).is_file():
                (folder / name).write_bytes((minilm_dir() / name).read_bytes())
    return folder


KERAS_APPS = ("mobilenetv2", "mobilenetv3", "efficientnet")


def build_keras_app(name: str, path: Path, side: int = 32, seed: int = 0) -> Path:
    """Save keras.applications' MobileNetV2, MobileNetV3-Small or EfficientNetB0 (`weights=None`, a `side` x `side`
    RGB input, 10 classes as logits: softmax over random weights would make every output a near-uniform 0.1)."""
    from edgekit.sources.keras_source import quiet_tf

    quiet_tf("Building the model zoo")
    import keras

    keras.utils.set_random_seed(seed)
    common: dict[str, Any] = dict(weights=None, input_shape=(side, side, 3), classes=10, classifier_activation=None)
    builders = {
        "mobilenetv2": lambda: keras.applications.MobileNetV2(alpha=0.35, **common),
        "mobilenetv3": lambda: keras.applications.MobileNetV3Small(alpha=0.75, include_preprocessing=False, **common),
        "efficientnet": lambda: keras.applications.EfficientNetB0(**common),
    }
    builders[name]().save(str(path))
    return path
