"""Upload handlers for document uploads: each uploaded file carries the SHA-256 of its bytes,
computed while it streams in, and names it in its text form.

``Idempotency-Key`` (``jobs.idempotency``) recognises a repeated request by hashing the JSON of
``request.data``, where a file appears as ``str(file)``: Django's files print as their name
alone, so two different files of one name would look like the same request, and the second
would get the first one's answer. Printed as ``name sha256:<digest>``, they do not.
"""

from __future__ import annotations

import hashlib

from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile
from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    TemporaryFileUploadHandler,
)


class _NamedByContent:
    name: str | None
    sha256: str = ""

    def __str__(self) -> str:
        return f"{self.name or ''} sha256:{self.sha256}"


class DigestInMemoryUploadedFile(_NamedByContent, InMemoryUploadedFile):
    pass


class DigestTemporaryUploadedFile(_NamedByContent, TemporaryUploadedFile):
    pass


class DigestMemoryUploadHandler(MemoryFileUploadHandler):
    """Small files, in memory (Django's own handler, plus the digest)."""

    def new_file(self, *args, **kwargs) -> None:
        self._digest = hashlib.sha256()
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if self.activated:
            self._digest.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> DigestInMemoryUploadedFile | None:
        if not self.activated:
            return None
        self.file.seek(0)
        uploaded = DigestInMemoryUploadedFile(
            file=self.file,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
        uploaded.sha256 = self._digest.hexdigest()
        return uploaded


class DigestTemporaryUploadHandler(TemporaryFileUploadHandler):
    """Larger files, in a temporary file (Django's own handler, plus the digest)."""

    def new_file(self, *args, **kwargs) -> None:
        # The base class's bookkeeping only: the parent's own temporary file is not wanted.
        FileUploadHandler.new_file(self, *args, **kwargs)
        self._digest = hashlib.sha256()
        self.file = DigestTemporaryUploadedFile(
            self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._digest.update(raw_data)
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> DigestTemporaryUploadedFile:
        uploaded = super().file_complete(file_size)
        uploaded.sha256 = self._digest.hexdigest()
        return uploaded


def use_digest_upload_handlers(request) -> None:
    """Make ``request`` (Django's, before its body is read) keep the digest of each file."""
    request.upload_handlers = [
        DigestMemoryUploadHandler(request),
        DigestTemporaryUploadHandler(request),
    ]
