"""SQL metadata of the store (SQLAlchemy 2): documents, their entries, index state, model identity.

Entries share one table and one id space (single-table inheritance): a ``Chunk`` (text of a page
span), a ``FaqEntry`` (question + answer) and an ``ImageEntry`` never have the same id, so a FAISS
hit id alone names its row. Entry ids are the FAISS ids.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import ClassVar

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class DocumentStatus:
    """Values of ``Document.status``."""

    INGESTED = "ingested"
    NOT_EMBEDDED = "not embedded"  # stored (e.g. an image) but no encoder can embed it yet
    FAILED = "failed"
    STALE = "stale"  # its vectors were lost (doctor repair): the next ingest redoes it

    DONE = (INGESTED, NOT_EMBEDDED)


class EntryKind:
    """Values of ``Entry.kind``; each kind has its own FAISS index per head."""

    CHUNK = "chunk"
    FAQ = "faq"
    IMAGE = "image"

    ALL = (CHUNK, FAQ, IMAGE)


class Base(DeclarativeBase):
    pass


class Document(Base):
    """One source file: where it is, what it contained (hash), and how its ingestion went."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    file_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    pages: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    entries: Mapped[list[Entry]] = relationship(back_populates="document", order_by="Entry.ordinal")


class Entry(Base):
    """Something searchable taken from a document; ``text`` is what was embedded (``embedding_texts``)."""

    __tablename__ = "entries"
    __table_args__: ClassVar[dict] = {
        "sqlite_autoincrement": True
    }  # ids never reused: a stale FAISS id can't alias a new row

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    embedded: Mapped[bool] = mapped_column(Boolean, default=True)

    document: Mapped[Document] = relationship(back_populates="entries")

    __mapper_args__: ClassVar[dict] = {"polymorphic_on": "kind"}

    def embedding_texts(self) -> list[str]:
        """The texts whose vectors, summed, make the entry's vector (``embed_entry_heads``)."""
        return [self.text]


class Chunk(Entry):
    """A span of a page: ``text == page_text[char_start:char_end]``; ``page`` is 1-based (None for plain text).
    ``heading``: where in the document it sits (section path, slide title, sheet, e-mail subject);
    ``ocr``: its text was recognised from an image (None in stores written before it was recorded)."""

    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    char_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    char_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heading: Mapped[str | None] = mapped_column(Text, nullable=True)
    ocr: Mapped[bool | None] = mapped_column(Boolean, nullable=True)

    __mapper_args__: ClassVar[dict] = {"polymorphic_identity": EntryKind.CHUNK}


def faq_embedding_texts(question: str, answer: str | None) -> list[str]:
    """What an FAQ entry's vector is made of: its question and, when it has one, its answer."""
    return [question, answer] if answer and answer.strip() else [question]


class FaqEntry(Entry):
    """One FAQ row: ``text`` is the question, ``ordinal`` the row number. Its vector is that of the
    question and the answer together (a question that describes the situation the answer covers, in
    other words than the FAQ's question, is still found: docs/faq-calibration.md)."""

    answer: Mapped[str | None] = mapped_column(Text, nullable=True)

    def embedding_texts(self) -> list[str]:
        return faq_embedding_texts(self.text, self.answer)

    __mapper_args__: ClassVar[dict] = {"polymorphic_identity": EntryKind.FAQ}


class ImageEntry(Entry):
    """An image file: ``text`` is its file name; embedded only once an encoder can embed images."""

    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    image_format: Mapped[str | None] = mapped_column(String(16), nullable=True)

    __mapper_args__: ClassVar[dict] = {"polymorphic_identity": EntryKind.IMAGE}


class IndexState(Base):
    """Which FAISS file is current for one (kind, head): the SQL commit is the switch between versions."""

    __tablename__ = "index_state"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    head: Mapped[str] = mapped_column(String(32), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    factory: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, onupdate=utc_now)


class PendingVectorDelete(Base):
    """An entry id whose vectors a committed transaction deleted and a vector backend that deletes after the
    commit (Milvus) has not deleted yet: the next writer deletes them if this one crashed."""

    __tablename__ = "pending_vector_deletes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class StoreMeta(Base):
    """Key/value facts about the store, e.g. which model built its vectors."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
