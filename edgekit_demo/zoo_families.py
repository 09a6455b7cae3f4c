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
    lm_ids = dict(pad_token_id=0, bos_token_id=101, eos_token_id=102)
    decoder = dict(
        vocab_size=30522,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=HIDDEN // 4,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=2 * SEQUENCE,
    )
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
        # the families ONNX Runtime GenAI's builder takes beside Llama (MiniLM's token ids for begin and end)
        **{
            name: (config(**decoder, **lm_ids, **more), model)
            for name, config, model, more in (
                ("qwen3", t.Qwen3Config, t.Qwen3ForCausalLM, {}),
                # Phi-3 without LongRoPE: its original context is its context
                ("phi3", t.Phi3Config, t.Phi3ForCausalLM, {"original_max_position_embeddings": 2 * SEQUENCE}),
                ("gemma", t.GemmaConfig, t.GemmaForCausalLM, {}),
            )
        },
        "gpt2": (
            t.GPT2Config(vocab_size=30522, n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=2 * SEQUENCE),
            t.GPT2LMHeadModel,
        ),
    }


CAUSAL_LMS = ("llama", "gpt2")
# causal LMs of the families ONNX Runtime GenAI builds (GPT-2 is not one): the ort-genai targets' tests
GENAI_FAMILIES = ("llama", "qwen3", "phi3", "gemma")
ENCODERS = ("bert", "distilbert", "mobilebert", "albert", "electra", "roberta", "deberta-v2", "modernbert")
FAMILIES = (*ENCODERS, "vit", *CAUSAL_LMS)


def build_family(
    family: str, folder: Path, seed: int = 0, tweets: int = 0, epochs: int = 2, digits: bool = False, **config: Any
) -> Path:
    """Save a small random-initialised model of `family` (one of FAMILIES) with MiniLM's tokenizer in `folder`;
    `config` overrides settings of the family's configuration. Random weights leave a classifier's logits nearly
    tied, which makes int8 agreement meaningless, so it can first be trained for `epochs`: an encoder on `tweets`
    training tweets, ViT (`digits=True`) on the upscaled digits (10 classes)."""
    import torch

    from edgekit.compress.save import copy_tokenizer

    if (tweets and family not in (*ENCODERS, *CAUSAL_LMS, *GENAI_FAMILIES)) or (digits and family != "vit"):
        raise ValueError(f"encoders and causal LMs train on tweets, ViT on digits; not {family}")
    if digits:
        config = {"num_labels": 10, **config}
    transformers = transformers_offline("Building the model zoo")
    settings, cls = _configs(transformers)[family]
    settings.update(config)
    torch.manual_seed(seed)
    model = cls(settings).eval()
    if tweets:
        from edgekit_demo.zoo_text import fit_lm_on_tweets, fit_on_tweets

        tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
        if family in (*CAUSAL_LMS, *GENAI_FAMILIES):
            model = fit_lm_on_tweets(model, tokenizer, tweets, epochs, lr=3e-3, context=SEQUENCE)
        else:
            model = fit_on_tweets(model, tokenizer, tweets, epochs, lr=1e-3, seq_len=SEQUENCE)
    if digits:
        model = _fit_vit_on_digits(model, epochs)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    copy_tokenizer(None if family == "vit" else minilm_dir(), folder)
    return folder


def _fit_vit_on_digits(model, epochs: int):
    import torch

    from edgekit_demo.zoo import digits_rgb
    from edgekit_demo.zoo_text import fit_hf_classifier

    x, y, _, _ = digits_rgb(side=32)
    x, y = x[:-DIGITS_VALIDATION], y[:-DIGITS_VALIDATION]
    return fit_hf_classifier(model, {"pixel_values": torch.from_numpy(x)}, y, epochs, lr=1e-3)


# The last training digits the image families are not fitted on: data for an accuracy gate (export --eval) that
# is neither what the model learned from nor the test split it is scored on.
DIGITS_VALIDATION = 300


KERAS_APPS = ("mobilenetv2", "mobilenetv3", "efficientnet")
# The pixel range each application takes: EfficientNet rescales by 1/255 and normalizes inside the model, so
# digits in [0, 1] would reach its first convolution as values within 0.02 of -2.1 (float copes; int8 sees
# a constant), the others were built without their preprocessing and take [0, 1].
PIXEL_SCALE = {"efficientnet": 255.0}


def keras_app_digits(name: str, side: int = 32):
    """The digits upscaled to `side` x `side` RGB (NHWC) in the pixel range `name` takes:
    (x_train, y_train, x_test, y_test)."""
    from edgekit_demo.zoo import digits_rgb

    x, y, x_test, y_test = digits_rgb(side, channels_last=True)
    scale = PIXEL_SCALE.get(name, 1.0)
    return (x * scale).astype(x.dtype), y, (x_test * scale).astype(x.dtype), y_test


def build_keras_app(name: str, path: Path, side: int = 32, seed: int = 0, digits_epochs: int = 0) -> Path:
    """Save keras.applications' MobileNetV2, MobileNetV3-Small or EfficientNetB0 (`weights=None`, a `side` x `side`
    RGB input, 10 classes as logits: softmax over random weights would make every output a near-uniform 0.1),
    trained for `digits_epochs` on the upscaled digits first."""
    from edgekit.sources.keras_source import quiet_tf

    quiet_tf("Building the model zoo")
    import keras

    keras.backend.clear_session()  # layer names restart: the input is `input_layer` whatever was built before
    keras.utils.set_random_seed(seed)
    common: dict[str, Any] = dict(weights=None, input_shape=(side, side, 3), classes=10, classifier_activation=None)
    builders = {
        "mobilenetv2": lambda: keras.applications.MobileNetV2(alpha=0.35, **common),
        "mobilenetv3": lambda: keras.applications.MobileNetV3Small(alpha=0.75, include_preprocessing=False, **common),
        "efficientnet": lambda: keras.applications.EfficientNetB0(**common),
    }
    model = builders[name]()
    if digits_epochs:
        x, y, _, _ = keras_app_digits(name, side)
        x, y = x[:-DIGITS_VALIDATION], y[:-DIGITS_VALIDATION]
        for layer in model.layers:  # MobileNetV2's 0.999 leaves the moving statistics near their start after
            if isinstance(layer, keras.layers.BatchNormalization):  # a few hundred steps: chance accuracy
                layer.momentum = 0.9
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
        model.fit(x, y, batch_size=32, epochs=digits_epochs, verbose=0)
    model.save(str(path))
    return path
