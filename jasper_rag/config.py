"""Every setting in one place: defaults here, overridable by ``JASPER_*`` environment variables.

Example: ``JASPER_MODEL=models/my-model JASPER_DEVICE=cpu jasper-rag search "..."``.
Relative paths are resolved against the current working directory (the project root when run
through ``make``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# No model hub on our machines: every weight comes from a registry package (see weights.py).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

STORES = ("faiss", "milvus")  # where the store keeps its vectors (jasper_rag.store.vectors; docs/scale.md)
MILVUS_INDEXES = ("FLAT", "HNSW", "IVF_FLAT")  # vector indexes the Milvus backend builds (docs/scale.md)
BACKENDS = ("torch", "onnx", "onnx-int8")  # inference backends of the text encoder (jasper_rag.backends)
# The faster of torch and fp32 ONNX for the model on this machine, timed once and recorded (jasper_rag.backend_choice).
AUTO_BACKEND = "auto"
# The default backend on the CPU: the fastest whose eval scores stay within QUALITY_TOLERANCE of eager torch for
# every head (reports/eval.md, "Backends"; `make eval` warns when this no longer holds). torch and fp32 ONNX give the
# same vectors, and which is faster depends on the CPU, so the choice between them is measured on the user's machine.
CPU_BACKEND = AUTO_BACKEND


def default_backend(data: dict[str, object]) -> str:
    """``CPU_BACKEND``, or eager torch when the encoder runs on CUDA (the ONNX backends run on the CPU) or
    when onnx / onnxruntime cannot be imported (base dependencies, but wheels are missing on some platforms)."""
    onnx_installed = all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime"))
    on_cuda = resolve_device(str(data.get("device") or "auto")) == "cuda"
    return CPU_BACKEND if onnx_installed and not on_cuda else BACKENDS[0]


class Settings(BaseSettings):
    """Paths, model names and limits shared by training, ingestion, search, eval and the UI."""

    model_config = SettingsConfigDict(env_prefix="JASPER_", extra="ignore")

    model: str = Field("models/jasper-quick", description="Saved in-house model used by ingest/search.")
    student_init: str = Field("minilm-l6", description="Packaged model the student starts from.")
    models_dir: Path = Field(Path("models"), description="Trained models (gitignored).")
    indexes_dir: Path = Field(Path("indexes"), description="FAISS indexes and the SQLite database.")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in indexes_dir.")
    cache_dir: Path = Field(Path(".cache"), description="Unpacked weights, teacher vectors, embeddings.")
    eval_dir: Path = Field(
        None,
        validate_default=True,
        description="MTEB-format eval sets (read-only); default <cache_dir>/eval, filled by `jasper-rag eval-data`.",
    )
    reports_dir: Path = Field(Path("reports"), description="Generated eval and bench reports.")
    runs_dir: Path = Field(Path("runs"), description="Training runs: checkpoints, loss logs, curves.")
    device: str = Field("auto", description="'auto' (CUDA when present), 'cpu' or 'cuda'.")
    batch_size: int = Field(32, gt=0, description="Encoding batch size.")
    max_length: int = Field(256, gt=8, le=8192, description="Max tokens per text when encoding.")
    backend: str = Field(
        default_factory=default_backend,
        description="Text encoder backend: 'torch' (eager), 'onnx' or 'onnx-int8' (ONNX Runtime, CPU), or 'auto' "
        "(the faster of torch and onnx here, timed once per model and machine); "
        f"default: torch on CUDA, else {CPU_BACKEND!r}.",
    )
    eval_tasks: tuple[str, ...] = Field(
        ("scifact", "stsbenchmark", "faq"), description="Default `jasper-rag eval` tasks (names or BEIR folders)."
    )
    eval_baseline_dims: tuple[int, ...] = Field((256, 128, 64), description="Dims of truncation / PCA baselines.")
    eval_pca_sample: int = Field(2000, gt=0, description="Documents per task the PCA baseline is fitted on.")
    eval_faq_target_precision: float = Field(
        0.95, gt=0, le=1, description="Precision the eval FAQ abstain threshold is calibrated for."
    )
    vision_backbone: str = Field("efficientnet-lite0", description="Packaged ImageNet backbone of the vision tower.")
    images_dir: Path = Field(Path("data/images"), description="Captioned image set built by `make images`.")
    max_image_pixels: int = Field(40_000_000, gt=0, description="Images with more pixels are refused (bomb guard).")
    chunk_tokens: int = Field(256, gt=8, description="Max tokens per ingested chunk (capped by the model's).")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by consecutive chunks of a page.")
    index_factory: str = Field(
        "Flat",
        description="FAISS factory per index, optionally with search parameters after a space: 'Flat' (exact), "
        "'HNSW32 efSearch=128', 'IVF256,Flat nprobe=16' (docs/performance.md, 'Index types': which per corpus size).",
    )
    store: str = Field(
        "faiss",
        description="Where the vectors live: 'faiss' (FAISS files in indexes_dir, the default) or 'milvus' "
        "(Milvus Lite file or Milvus server, milvus_uri; needs `pip install 'jasper-rag[milvus]'`; docs/scale.md).",
    )
    milvus_uri: str | None = Field(
        None,
        description="Milvus of store='milvus': a Milvus Lite file ('path/milvus.db'; default: "
        "<indexes_dir>/milvus.db) or a server ('http://host:19530'; Zilliz Cloud: its https endpoint).",
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus credentials: 'user:password' or an API key (none for Milvus Lite)."
    )
    milvus_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for the Milvus server to answer.")
    milvus_index: str = Field(
        "FLAT",
        description="Index of the Milvus vector fields, built when a collection is created: 'FLAT' (exact), 'HNSW' "
        "or 'IVF_FLAT' (approximate; docs/scale.md, 'ANN indexes on Milvus').",
    )
    milvus_hnsw_m: int = Field(16, ge=2, le=2048, description="HNSW on Milvus: links per vector (build).")
    milvus_hnsw_ef_construction: int = Field(200, ge=1, description="HNSW on Milvus: candidates per insert (build).")
    milvus_hnsw_ef: int = Field(
        64, ge=1, description="HNSW on Milvus: candidates per query (search; raised to the query's k when smaller)."
    )
    milvus_ivf_nlist: int = Field(1024, ge=1, le=65536, description="IVF_FLAT on Milvus: clusters (build).")
    milvus_ivf_nprobe: int = Field(
        16, ge=1, le=65536, description="IVF_FLAT on Milvus: clusters searched per query (search; at most nlist)."
    )
    ingest_max_file_mb: float = Field(50.0, gt=0, description="Ingestion refuses files larger than this.")
    ingest_commit_chunks: int = Field(2048, gt=0, description="Chunks embedded between two commits of the store.")
    ingest_max_pdf_pages: int = Field(2000, gt=0, description="Ingestion refuses PDFs with more pages than this.")
    ingest_max_pdf_content_mb: float = Field(
        64.0, gt=0, description="Ingestion refuses PDFs whose pages decode to more content than this (summed per page)."
    )
    ingest_parse_cpu_s: int = Field(60, gt=0, description="CPU seconds one file's parsing may take (worker process).")
    ingest_parse_memory_mb: int = Field(2048, gt=0, description="Address space of the parsing worker process, MiB.")
    ingest_parse_wall_s: float = Field(120.0, gt=0, description="Wall-clock seconds one file's parsing may take.")
    ingest_ocr: bool = Field(True, description="Recognise the text of scanned PDF pages and images of text (OCR).")
    ingest_ocr_max_pages: int = Field(
        20,
        gt=0,
        description="Pages (or images) of one file OCR may read; more are left without text. OCR also starts no new "
        "page past 60% of ingest_parse_cpu_s (~7-12 s of CPU per full page: raise both to read more).",
    )
    ingest_max_page_chars: int = Field(
        10_000_000, gt=0, description="Ingestion refuses a file with a page (or section) longer than this."
    )
    ingest_max_archive_mb: float = Field(
        128.0, gt=0, description="Zip-based files (DOCX, PPTX, XLSX, ODT, EPUB) may inflate to at most this."
    )
    ingest_max_archive_members: int = Field(10_000, gt=0, description="Most files one zip-based file may hold.")
    ingest_max_archive_ratio: float = Field(
        500.0, gt=1, description="Most a zip member over 1 MiB may inflate per compressed byte (zip bomb guard)."
    )
    ingest_max_table_cells: int = Field(
        200_000, gt=0, description="Ingestion refuses tables (XLSX workbooks, CSV, DOCX tables) with more cells."
    )
    ingest_max_table_chars: int = Field(
        20_000_000,
        gt=0,
        description="Ingestion refuses tables whose text (cells, and column names repeated before values) is longer.",
    )
    ingest_max_mail_messages: int = Field(10_000, gt=0, description="Ingestion refuses mailboxes with more messages.")
    ingest_max_mail_message_mb: float = Field(
        25.0, gt=0, description="E-mail messages larger than this are refused (skipped inside a mailbox)."
    )
    uploads_dir: Path = Field(Path("data/uploads"), description="Where the UI saves uploaded files (generated names).")

    @field_validator("eval_dir", mode="before")
    @classmethod
    def _eval_dir_in_cache(cls, value: object, info: ValidationInfo) -> object:
        """Unset: the ``eval`` folder of the cache (``JASPER_EVAL_DIR`` or an argument overrides it)."""
        if value is None and "cache_dir" in info.data:
            return info.data["cache_dir"] / "eval"
        return value

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in (*BACKENDS, AUTO_BACKEND):
            choices = ", ".join((*BACKENDS, AUTO_BACKEND))
            raise ValueError(f"unknown backend {value!r}: JASPER_BACKEND must be one of {choices}")
        return value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value not in STORES:
            raise ValueError(f"unknown store {value!r}: JASPER_STORE must be one of {', '.join(STORES)}")
        return value

    @field_validator("milvus_index", mode="before")
    @classmethod
    def _known_milvus_index(cls, value: object) -> str:
        name = str(value).upper()
        if name not in MILVUS_INDEXES:
            choices = ", ".join(MILVUS_INDEXES)
            raise ValueError(f"unknown Milvus index {value!r}: JASPER_MILVUS_INDEX must be one of {choices}")
        return name

    @field_validator("milvus_ivf_nprobe")
    @classmethod
    def _nprobe_within_nlist(cls, value: int, info: ValidationInfo) -> int:
        nlist = info.data.get("milvus_ivf_nlist")
        if nlist is not None and value > nlist:
            raise ValueError(f"{value} clusters searched, more than JASPER_MILVUS_IVF_NLIST={nlist} built")
        return value

    @property
    def database_url(self) -> str:
        """The configured SQLAlchemy URL, or SQLite inside the indexes folder."""
        return self.db_url or f"sqlite:///{(self.indexes_dir / 'jasper.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()


def resolve_device(device: str | None = None) -> str:
    """Turn 'auto' (or None) into 'cuda' when a GPU is present, else 'cpu'.

    A CPU-only torch build (version ``+cpu``) answers 'cpu' without importing torch, so settings
    (whose default backend depends on the device) stay cheap to read.
    """
    choice = device or get_settings().device
    if choice != "auto":
        return choice
    if cpu_only_torch():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_only_torch() -> bool:
    """Whether the installed torch is a CPU-only build (it can never see a GPU)."""
    return importlib.metadata.version("torch").endswith("+cpu")
