"""What kind of file an upload is when it is not text (pure; no Django).

A binary upload (an image, an archive, a database) would otherwise be read line by line and
reported as thousands of "not UTF-8" lines; one sentence naming what it looks like is what the
user needs. A text file with a few bad bytes is *not* caught here: it keeps its per-line errors.

>>> not_text_kind(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(100))
'a PNG image'
>>> not_text_kind(b'{"turns": []}\\n' * 20 + b'{"user": "caf\\xe9"}\\n') is None
True
>>> not_text_message(b"PK\\x03\\x04" + bytes(100))
'this is not a text file (looks like a ZIP archive: unzip it and upload the JSON or JSON Lines file inside)'
"""

from __future__ import annotations

# Leading bytes ("magic numbers") of the binary files people upload by mistake.
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"RIFF", "a RIFF media file (WebP, WAV or AVI)"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive: unzip it and upload the JSON or JSON Lines file inside"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip-compressed file: decompress it first"),
    (b"BZh", "a bzip2-compressed file: decompress it first"),
    (b"\xfd7zXZ\x00", "an xz-compressed file: decompress it first"),
    (b"(\xb5/\xfd", "a zstd-compressed file: decompress it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: extract it first"),
    (b"SQLite format 3\x00", "an SQLite database: export its rows as JSON Lines"),
    (b"PAR1", "a Parquet file: convert it to JSON Lines (e.g. datasets' to_json)"),
    (b"ARROW1", "an Arrow file: convert it to JSON Lines (e.g. datasets' to_json)"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
)
SAMPLE = 8192
# Share of the sample that is not UTF-8 above which the file is binary, not text with a few bad bytes.
BINARY_SHARE = 0.10


def not_text_kind(data: bytes) -> str | None:
    """What ``data`` looks like when it is not UTF-8 text, or None for text (even with some bad lines)."""
    head = data[:SAMPLE]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text: save it as UTF-8"
    try:
        head.decode("utf-8")
        if b"\x00" not in head:
            return None
    except UnicodeDecodeError:
        pass
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"ustar", 257):
        return "a tar archive: extract it first"
    sample = head.decode("utf-8", errors="replace")
    bad = sample.count("\ufffd") + sample.count("\x00")
    if b"\x00" in head or bad > BINARY_SHARE * max(len(sample), 1):
        return "binary data, not JSON"
    return None


NOT_TEXT = "this is not a text file"


def not_text_message(data: bytes) -> str | None:
    """The one error for a binary upload, or None for text."""
    kind = not_text_kind(data)
    return None if kind is None else f"{NOT_TEXT} (looks like {kind})"


def is_not_text(errors) -> bool:
    """Whether an import's problems are the one "not a text file" error (issues or their dicts)."""
    if len(errors) != 1:
        return False
    e = errors[0]
    message = e.get("message", "") if isinstance(e, dict) else e.message
    return message.startswith(NOT_TEXT)
