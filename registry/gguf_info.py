"""What a GGUF file's header says about the model inside it.

A small reader of the header (metadata and tensor table) that skips over large
arrays such as the tokenizer's vocabulary instead of decoding them: the `gguf`
package's reader takes about 20 s on a 262k-token vocabulary, this takes a
fraction of a second. The `gguf` package supplies the format's constants.
"""

import mmap
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

from gguf import GGUF_MAGIC, GGUFValueType, LlamaFileType


class NotGGUF(Exception):
    pass


@dataclass
class GGUFInfo:
    architecture: str
    parameter_count: int
    quantization: str
    context_length: int | None
    chat_template: str
    tensor_count: int


_SCALARS = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h", GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}


class _Cursor:
    def __init__(self, buffer) -> None:
        self.buffer, self.pos = buffer, 0

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.buffer):
            raise NotGGUF("the header runs past the end of the file (truncated?)")
        (value,) = struct.unpack_from("<" + fmt, self.buffer, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.take("Q")
        if self.pos + length > len(self.buffer):
            raise NotGGUF("a string in the header runs past the end of the file (truncated?)")
        value = bytes(self.buffer[self.pos:self.pos + length])
        self.pos += length
        return value.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.take("Q")
        self.pos += length

    def value(self, kind: int, keep: bool):
        kind = GGUFValueType(kind)
        if kind == GGUFValueType.STRING:
            return self.string() if keep else self.skip_string()
        if kind == GGUFValueType.ARRAY:
            item_kind, count = GGUFValueType(self.take("I")), self.take("Q")
            if item_kind in _SCALARS:
                self.pos += count * struct.calcsize("<" + _SCALARS[item_kind])
            else:
                for _ in range(count):
                    self.value(item_kind, keep=False)
            return None
        return self.take(_SCALARS[kind])


WANTED = {"general.architecture", "general.file_type", "tokenizer.chat_template"}


def read_info(path: Path) -> GGUFInfo:
    """Reads the header; NotGGUF says what is wrong with a file that is not a whole GGUF."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            return _parse(buffer, path)
    except (ValueError, OSError) as exc:  # empty file, unknown value type, ...
        raise NotGGUF(f"{path.name} is not a valid GGUF file: {exc}") from exc


def _parse(buffer, path: Path) -> GGUFInfo:
    cursor = _Cursor(buffer)
    if len(buffer) < 24 or cursor.take("I") != GGUF_MAGIC:
        raise NotGGUF(f"{path.name} is not a GGUF file (bad magic)")
    version = cursor.take("I")
    if version not in (2, 3):
        raise NotGGUF(f"{path.name} has unsupported GGUF version {version}")
    tensor_count, kv_count = cursor.take("Q"), cursor.take("Q")
    meta = {}
    for _ in range(kv_count):
        key = cursor.string()
        kind = cursor.take("I")
        value = cursor.value(kind, keep=key in WANTED or key.endswith(".context_length"))
        if value is not None:
            meta[key] = value
    parameters = 0
    for _ in range(tensor_count):
        cursor.skip_string()
        dims = [cursor.take("Q") for _ in range(cursor.take("I"))]
        cursor.take("I")  # type
        cursor.take("Q")  # offset
        parameters += prod(dims)
    arch = meta.get("general.architecture", "")
    file_type = meta.get("general.file_type")
    try:
        quant = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else ""
    except ValueError:
        quant = str(file_type)
    return GGUFInfo(architecture=arch, parameter_count=parameters, quantization=quant,
                    context_length=meta.get(f"{arch}.context_length"),
                    chat_template=meta.get("tokenizer.chat_template", ""), tensor_count=tensor_count)
