"""PNG chunks: parsing with CRC checks, decoding and re-encoding the text chunks (tEXt, zTXt, iTXt)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

# PNG chunks that hold pixels and colour facts only; any other chunk but the text ones may hide text.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_TEXT_CHUNKS = {b"tEXt", b"zTXt", b"iTXt"}
PNG_PLAIN_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"pHYs", b"bKGD",
                    b"sBIT", b"tIME", b"hIST", b"sPLT"}


@dataclass(frozen=True)
class PngChunk:
    type: bytes
    data: bytes

    def encode(self) -> bytes:
        return struct.pack(">I", len(self.data)) + self.type + self.data + struct.pack(">I", zlib.crc32(self.type + self.data))


@dataclass(frozen=True)
class PngText:
    """A text chunk's parts; the scan sees `scanned`: keyword, translated keyword and text, one a line."""

    chunk_type: bytes
    keyword: str
    translated: str
    text: str
    language: bytes = b""
    compressed: bool = False

    @property
    def scanned(self) -> str:
        return "\n".join([self.keyword, self.translated, self.text])

    def with_scanned(self, scanned: str) -> PngText | None:
        parts = scanned.split("\n", 2)
        return replace(self, keyword=parts[0][:79], translated=parts[1], text=parts[2]) if len(parts) == 3 else None

    def chunk(self) -> PngChunk:
        keyword = self.keyword.encode("latin-1", "replace")
        if self.chunk_type == b"tEXt":
            return PngChunk(b"tEXt", keyword + b"\0" + self.text.encode("latin-1", "replace"))
        if self.chunk_type == b"zTXt":
            return PngChunk(b"zTXt", keyword + b"\0\0" + zlib.compress(self.text.encode("latin-1", "replace")))
        text = self.text.encode("utf-8")
        return PngChunk(b"iTXt", keyword + b"\0" + (b"\1\0" if self.compressed else b"\0\0") + self.language + b"\0"
                        + self.translated.encode("utf-8") + b"\0" + (zlib.compress(text) if self.compressed else text))


def png_chunks(data: bytes) -> list[PngChunk] | None:
    """The chunks of a well-formed PNG (each CRC checked, nothing after IEND), else None."""
    chunks, i = [], len(PNG_SIGNATURE)
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        chunk = PngChunk(data[i + 4:i + 8], data[i + 8:i + 8 + length])
        crc = data[i + 8 + length:i + 12 + length]
        if len(chunk.data) != length or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(chunk.type + chunk.data):
            return None
        chunks.append(chunk)
        i += 12 + length
        if chunk.type == b"IEND":
            return chunks if i == len(data) else None
    return None


def png_text(chunk: PngChunk) -> PngText | None:
    """Decode a tEXt / zTXt / iTXt chunk; None if it does not decode."""
    try:
        keyword, rest = chunk.data.split(b"\0", 1)
        if chunk.type == b"tEXt":
            return PngText(b"tEXt", keyword.decode("latin-1"), "", rest.decode("latin-1"))
        if chunk.type == b"zTXt":
            return PngText(b"zTXt", keyword.decode("latin-1"), "", zlib.decompress(rest[1:]).decode("latin-1"))
        compressed = rest[0] == 1
        language, translated, text = rest[2:].split(b"\0", 2)
        return PngText(b"iTXt", keyword.decode("latin-1"), translated.decode("utf-8"),
                       (zlib.decompress(text) if compressed else text).decode("utf-8"), language, compressed)
    except (ValueError, IndexError, zlib.error):
        return None
