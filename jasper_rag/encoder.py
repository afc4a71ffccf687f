"""JasperEncoder: a transformers backbone, mean pooling and named linear heads.

The full head (``full``) maps the pooled hidden state to the teacher ensemble's dimension
(paper's FC1); reduced heads (``d256``, ``d128``, ...) map it to MRL-style small dimensions
(paper's FC2..FC4). ``encode(texts, dim=...)`` picks a head by its output size;
``dim=None`` returns the backbone's own pooled vector, whose name wherever heads are named is ``POOLED``.
``encode_heads(texts)`` returns every head's vectors (``POOLED`` included) from one backbone pass: each
head is a linear map of the pooled state, so several heads never need several passes.

Saved format (no network needed to load): ``jasper_config.json`` + ``model.safetensors`` +
the backbone's ``config.json`` + tokenizer files. An optional vision tower (``attach_vision``,
``jasper_rag.vision``) is saved in the same files (its architecture under ``extra["vision"]``) and
embeds images into every head's space: ``encode_images(images, dim=...)``, or every head at once from
one pass of the tower: ``encode_image_heads(images)``.

A model distilled with role prompts (recipe ``student_prompts``) records them under ``extra["prompts"]``;
``encoder.at(dim).for_role(role)`` embeds with the role's prefix (the eval harness asks for the role of
every text it embeds).

``use_backend`` (``load_encoder``: ``JASPER_BACKEND``) runs the text forward pass on ONNX Runtime instead
of eager torch (``jasper_rag.backends``); training mode or a new head returns the encoder to torch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from jasper_rag.batching import inverse, sorted_batches, token_lengths
from jasper_rag.config import AUTO_BACKEND, BACKENDS, get_settings, resolve_device
from jasper_rag.embedding import Role, normalize_rows

if TYPE_CHECKING:
    from jasper_rag.backends import OnnxSession

log = logging.getLogger(__name__)

CONFIG_FILE = "jasper_config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"  # the model card (jasper_rag.train.model_card); kept when a folder is saved over
FULL_HEAD = "full"
POOLED = "pooled"  # the one name of the pooled backbone vector (no head) wherever heads are named
VISION_KEY = "vision"  # EncoderConfig.extra key of the vision tower's architecture
RECIPE_KEY = "recipe"  # EncoderConfig.extra key of the recipe a trained model was distilled with
# EncoderConfig.extra key: role -> the prefix a model distilled with student prompts reads that role's texts with
PROMPTS_KEY = "prompts"
DEFAULT_BATCH_SIZE = 32  # texts or images per forward pass of encode (load_encoder: settings batch_size)
TORCH_BACKEND = BACKENDS[0]
DEFAULT_MAX_LENGTH = 256  # tokens per text of a model built from a plain backbone (load_encoder: settings)


def reduced_head_name(dim: int) -> str:
    """The conventional name of a reduced head of size ``dim`` (e.g. ``d256``)."""
    return f"d{dim}"


@dataclass
class EncoderConfig:
    """What a saved encoder needs besides its tensors."""

    source: str
    max_length: int
    heads: dict[str, int] = field(default_factory=dict)
    pooling: str = "mean"
    extra: dict[str, object] = field(default_factory=dict)


class JasperEncoder(nn.Module):
    """Student encoder: backbone -> mean pooling -> optional linear heads.

    ``batch_size`` is how many texts (or images) ``encode`` runs through the model at once when a
    call does not say; ``load_encoder`` sets it from the settings, once, at load time."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        config: EncoderConfig,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
        self.batch_size = batch_size
        self.backend = TORCH_BACKEND
        self._onnx: OnnxSession | None = None  # opened on the first encode with an ONNX backend
        self._onnx_cache: Path | None = None
        self.heads = nn.ModuleDict()
        for name, dim in config.heads.items():
            self.heads[name] = nn.Linear(self.hidden_size, dim)
        self.vision: nn.Module | None = None
        if VISION_KEY in config.extra:
            from jasper_rag.vision.tower import VisionTower

            self.vision = VisionTower.from_config(config.extra[VISION_KEY])  # type: ignore[arg-type]

    # ----------------------------------------------------------------- structure
    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dims(self) -> list[int]:
        """Output sizes available to ``encode``: the pooled hidden size, then each head's."""
        return [self.hidden_size, *(head.out_features for head in self.heads.values())]

    def add_head(self, name: str, dim: int) -> nn.Linear:
        """Add a freshly initialised linear head ``hidden -> dim`` (replacing one of that name)."""
        if name == POOLED:
            raise ValueError(f"'{POOLED}' names the pooled vector, not a head")
        head = nn.Linear(self.hidden_size, dim).to(self.device)
        self.use_backend(TORCH_BACKEND)  # an exported graph knows only the heads it was exported with
        self.heads[name] = head
        self.config.heads[name] = dim
        return head

    def attach_vision(self, tower: nn.Module) -> None:
        """Attach (or replace) a ``jasper_rag.vision.VisionTower``; it is saved and loaded with the model."""
        self.vision = tower.to(self.device)
        self.config.extra[VISION_KEY] = dict(tower.config)

    def head_for_dim(self, dim: int | None) -> str:
        """The name of the head producing ``dim``-d vectors; ``POOLED`` for None (the backbone's vector)."""
        if dim is None:
            return POOLED
        for name, head in self.heads.items():
            if head.out_features == dim:
                return name
        if dim == self.hidden_size:
            return POOLED
        raise ValueError(f"no head of dimension {dim}; available dims: {self.dims}")

    def head_dim(self, name: str) -> int:
        """The vector size of head ``name`` (``POOLED``: the hidden size)."""
        return self.hidden_size if name == POOLED else self.heads[name].out_features

    def head_output(self, name: str, hidden: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) vectors of head ``name`` from pooled text or image hidden vectors."""
        return hidden if name == POOLED else self.heads[name](hidden)

    def head_names(self, heads: Sequence[str] | None = None) -> list[str]:
        """``heads`` checked against the model, or every name it has: ``POOLED``, then each head."""
        available = [POOLED, *self.heads]
        names = available if heads is None else list(heads)
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ValueError(f"no head named {unknown}; available: {available}")
        return names

    # ----------------------------------------------------------------- backend
    def use_backend(self, backend: str, cache_dir: Path | None = None) -> None:
        """Run the text forward pass on ``backend`` (``jasper_rag.config.BACKENDS``) from now on; ONNX files
        are exported on first encode under ``<cache_dir>/onnx/`` (default: the settings' cache_dir).

        The export freezes the weights of that moment: change them in place afterwards (outside training
        mode, which returns to torch) and call ``use_backend`` again. ``auto``: the faster of torch and fp32 ONNX
        for these weights on this machine (``jasper_rag.backend_choice``: timed once, then recorded)."""
        if backend == AUTO_BACKEND:
            from jasper_rag.backend_choice import choose_backend

            backend = choose_backend(self, Path(cache_dir) if cache_dir is not None else get_settings().cache_dir)
        if backend not in BACKENDS:
            choices = ", ".join((*BACKENDS, AUTO_BACKEND))
            raise ValueError(f"unknown backend {backend!r}: JASPER_BACKEND must be one of {choices}")
        if backend != TORCH_BACKEND:
            from jasper_rag.backends import require_onnxruntime

            require_onnxruntime()
            self._onnx_cache = Path(cache_dir) if cache_dir is not None else get_settings().cache_dir
        self.backend = backend
        self._onnx = None

    def train(self, mode: bool = True) -> JasperEncoder:
        """Training changes the weights an export froze: training mode returns the encoder to torch."""
        if mode and self.backend != TORCH_BACKEND:
            log.info("%s: training mode, backend %s -> %s", self.config.source, self.backend, TORCH_BACKEND)
            self.use_backend(TORCH_BACKEND)
        return super().train(mode)

    def onnx_session(self) -> OnnxSession:
        """The ONNX Runtime session of the current backend (exported and cached on first use)."""
        if self._onnx is None:
            from jasper_rag.backends import OnnxSession, cached_onnx

            path = cached_onnx(self, self.backend, self._onnx_cache)
            self._onnx = OnnxSession(path, self.tokenizer, self.config.max_length)
        return self._onnx

    # ----------------------------------------------------------------- forward
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise with padding and truncation to ``max_length``, on the model's device."""
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        )
        return {key: value.to(self.device) for key, value in batch.items()}

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over real (non-padding) tokens."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def pool_texts(
        self,
        texts: Sequence[str],
        chunk_size: int = 32,
        show_progress: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Pooled states of ``texts`` in input order (with gradients unless called under inference mode).

        The backbone runs on length-sorted chunks of ``chunk_size`` texts (``jasper_rag.batching``: by
        token count, longest first), each padded only to its own longest text: the same vectors as one
        padded batch (attention and mean pooling ignore padding; only dropout's random draws differ), at a
        fraction of the padded tokens when lengths vary (stage 2 of the default recipe: 8.4 s a step of
        128 texts instead of 22 on 2 cores).
        ``on_batch(n)`` is called after each chunk of ``n`` texts (progress bars).
        """
        lengths = token_lengths(self.tokenizer, texts, self.config.max_length)
        batches = list(sorted_batches(lengths, chunk_size))
        chunks = []
        for rows in tqdm(batches, desc="encoding", unit="batch", disable=not show_progress):
            chunks.append(self.pool(**self.tokenize([texts[i] for i in rows])))
            if on_batch is not None:
                on_batch(len(rows))
        order = torch.from_numpy(inverse(np.concatenate(batches))).to(self.device)
        return torch.cat(chunks)[order]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Pooled vector (key ``POOLED``) and every head's raw (unnormalised) output."""
        pooled = self.pool(input_ids, attention_mask, **kwargs)
        outputs = {POOLED: pooled}
        for name, head in self.heads.items():
            outputs[name] = head(pooled)
        return outputs

    def _head_arrays(self, hidden: torch.Tensor, names: Sequence[str], normalize: bool) -> dict[str, np.ndarray]:
        """Each named head's float32 vectors of ``hidden`` (unit rows when ``normalize``)."""
        arrays = {name: self.head_output(name, hidden).float().cpu().numpy() for name in names}
        return {name: normalize_rows(vectors) if normalize else vectors for name, vectors in arrays.items()}

    @torch.inference_mode()
    def encode_heads(
        self,
        texts: Sequence[str],
        heads: Sequence[str] | None = None,
        batch_size: int | None = None,
        normalize: bool = True,
        show_progress: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Head name -> float32 vectors ``(len(texts), head size)`` of ``texts``, for every head
        (``POOLED`` first) or those named in ``heads``; rows unit length when ``normalize``.

        One backbone pass serves them all: texts are batched longest-first (less padding; ``on_batch(n)``
        after each batch) and returned in input order.
        """
        names = self.head_names(heads)
        if len(texts) == 0:
            return {name: np.zeros((0, self.head_dim(name)), dtype=np.float32) for name in names}
        if self.backend != TORCH_BACKEND:
            return self.onnx_session().encode_heads(
                list(texts), names, batch_size or self.batch_size, normalize, show_progress, on_batch
            )
        was_training = self.training
        self.eval()
        try:
            pooled = self.pool_texts(texts, batch_size or self.batch_size, show_progress, on_batch)
        finally:
            self.train(was_training)
        return self._head_arrays(pooled, names, normalize)

    def encode(
        self,
        texts: Sequence[str],
        dim: int | None = None,
        batch_size: int | None = None,
        normalize: bool = True,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed texts as a float32 array ``(len(texts), dim)`` with the head of that size (None: the
        pooled vector); rows unit length when ``normalize``. ``encode_heads`` for one head."""
        head = self.head_for_dim(dim)
        return self.encode_heads(texts, [head], batch_size, normalize, show_progress)[head]

    @torch.inference_mode()
    def encode_image_heads(
        self,
        images: Sequence[object],
        heads: Sequence[str] | None = None,
        batch_size: int | None = None,
        normalize: bool = True,
        show_progress: bool = False,
    ) -> dict[str, np.ndarray]:
        """Head name -> float32 vectors of PIL images in each head's text space (``encode_heads`` for
        images): the vision tower runs once per image whatever the number of heads."""
        if self.vision is None:
            raise ValueError(
                f"encoder '{self.config.source}' has no vision tower: attach one with `jasper-rag train-vision`"
            )
        from jasper_rag.vision.images import to_pixels

        names = self.head_names(heads)
        size = batch_size or self.batch_size
        was_training = self.training
        self.eval()
        hidden = [torch.zeros((0, self.hidden_size), device=self.device)]
        try:
            for start in tqdm(range(0, len(images), size), desc="encoding images", disable=not show_progress):
                hidden.append(self.vision(to_pixels(images[start : start + size]).to(self.device)))  # type: ignore[arg-type]
        finally:
            self.train(was_training)
        return self._head_arrays(torch.cat(hidden), names, normalize)

    def encode_images(
        self,
        images: Sequence[object],
        dim: int | None = None,
        batch_size: int | None = None,
        normalize: bool = True,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Embed PIL images as a float32 array ``(len(images), dim)`` in the space of ``encode(texts, dim)``."""
        head = self.head_for_dim(dim)
        return self.encode_image_heads(images, [head], batch_size, normalize, show_progress)[head]

    def at(self, dim: int | None = None) -> HeadEncoder:
        """This encoder seen through one head, as a ``TextEncoder`` (for eval, search, ingest)."""
        return HeadEncoder(self, dim)

    # ----------------------------------------------------------------- persistence
    def fingerprint(self) -> str:
        """The identity of this encoder's text vectors: ``weights_fingerprint``, plus the backend's name when
        its vectors differ from eager by more than ``jasper_rag.backends.IDENTITY_TOLERANCE``."""
        if self.backend == TORCH_BACKEND:
            return self.weights_fingerprint()
        from jasper_rag.backends import KEEPS_IDENTITY

        suffix = "" if self.backend in KEEPS_IDENTITY else f"-{self.backend}"
        return f"{self.weights_fingerprint()}{suffix}"

    def weights_fingerprint(self) -> str:
        """A short hash of the text side's configuration and tensors: changes whenever text vectors can.

        The vision tower and other ``extra`` metadata (e.g. the FAQ calibration) are left out, so
        attaching or training the tower, or calibrating, keeps cached text vectors valid."""
        config = asdict(self.config)
        config.pop("extra")
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            if name.startswith(f"{VISION_KEY}."):
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def save(self, folder: str | Path) -> Path:
        """Write a self-contained folder atomically (temp folder, then rename over the old one).

        Saving over a model folder keeps its model card (``README.md``, with any use terms the model
        inherited): calibrating, refitting heads or aligning the vision tower rewrites the weights and
        config, not what the model is and may be used for."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.backbone.config.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
            save_file(state, tmp / WEIGHTS_FILE, metadata={"format": "jasper_rag"})
            (tmp / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
            if (folder / CARD_FILE).is_file():
                shutil.copyfile(folder / CARD_FILE, tmp / CARD_FILE)
            if folder.exists():
                old = folder.with_name(f".{folder.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                folder.rename(old)
                tmp.rename(folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def from_saved(
        cls, folder: str | Path, device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> JasperEncoder:
        """Load a folder written by ``save`` (no network)."""
        folder = Path(folder)
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = EncoderConfig(**raw)
        backbone = AutoModel.from_config(AutoConfig.from_pretrained(folder))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        encoder = cls(backbone, tokenizer, config, batch_size)
        encoder.load_state_dict(load_file(folder / WEIGHTS_FILE))
        return encoder.to(resolve_device(device)).eval()

    @classmethod
    def from_backbone(
        cls,
        folder: str | Path,
        max_length: int = DEFAULT_MAX_LENGTH,
        device: str | None = None,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> JasperEncoder:
        """A head-less encoder around a transformers / sentence-transformers folder; ``max_length`` is
        capped by the tokenizer's own limit."""
        folder = Path(folder)
        backbone = AutoModel.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        config = EncoderConfig(
            source=source or folder.name, max_length=int(min(max_length, tokenizer.model_max_length))
        )
        return cls(backbone, tokenizer, config, batch_size).to(resolve_device(device)).eval()


def prompt_suffix(prompt: str) -> str:
    """What a role prompt adds to a fingerprint: nothing without one, else a short hash of it."""
    return f"-p{hashlib.sha256(prompt.encode()).hexdigest()[:8]}" if prompt else ""


class HeadEncoder:
    """A ``TextEncoder`` view of one head of a JasperEncoder (``for_role``: the same with a role's prompt)."""

    def __init__(self, encoder: JasperEncoder, dim: int | None, prompt: str = "") -> None:
        self.encoder = encoder
        self.head = encoder.head_for_dim(dim)
        self.dim = encoder.head_dim(self.head)
        self.prompt = prompt
        self.name = f"{encoder.config.source}@{self.head}"

    def for_role(self, role: Role) -> HeadEncoder:
        """This head reading texts with the model's prompt for ``role`` (itself when the model has none)."""
        prompt = dict(self.encoder.config.extra.get(PROMPTS_KEY, {})).get(role, "")  # type: ignore[call-overload]
        if prompt == self.prompt:
            return self
        view = copy.copy(self)
        view.prompt, view.name = prompt, f"{self.name.split('@role:')[0]}@role:{role}"
        return view

    def fingerprint(self) -> str:
        """Identity of the underlying weights, the head and the prompt (for caches and the store)."""
        return f"{self.encoder.fingerprint()}-{self.head}{prompt_suffix(self.prompt)}"

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        texts = [self.prompt + text for text in texts] if self.prompt else texts
        return self.encoder.encode_heads(texts, [self.head], batch_size, show_progress=show_progress)[self.head]


def load_encoder(name_or_path: str | Path, device: str | None = None) -> JasperEncoder:
    """The one way to load an encoder: a saved JasperEncoder folder, a packaged short name
    (``minilm-l6``) or any transformers / sentence-transformers folder.

    The settings are read here, once: the device (when ``device`` is None), the encoding batch size,
    the backend (``JASPER_BACKEND``) and, for a plain backbone, the max tokens per text; ``encode``
    itself never reads them."""
    from jasper_rag.weights import model_path

    settings = get_settings()
    device = resolve_device(device or settings.device)
    path = Path(name_or_path)
    if (path / CONFIG_FILE).is_file():
        encoder = JasperEncoder.from_saved(path, device=device, batch_size=settings.batch_size)
    else:
        source = path.name if path.is_dir() else str(name_or_path)
        encoder = JasperEncoder.from_backbone(
            model_path(name_or_path), settings.max_length, device, source, batch_size=settings.batch_size
        )
    encoder.use_backend(settings.backend, settings.cache_dir)
    return encoder
