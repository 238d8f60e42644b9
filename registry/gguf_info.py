"""What a GGUF file's header says about the model inside it, and whether the file is whole.

A small reader of the header (metadata and tensor table) that skips over large
arrays such as the tokenizer's vocabulary instead of decoding them: the `gguf`
package's reader takes about 20 s on a 262k-token vocabulary, this takes a
fraction of a second. The `gguf` package supplies the format's constants.

The layout of a GGUF file (all numbers little-endian):

    magic "GGUF" (4 bytes), version (uint32), tensor count (uint64), metadata count (uint64)
    metadata entries: key (string), value type (uint32), value
    tensor infos: name (string), dimension count (uint32), dimensions (uint64 each), ggml type (uint32),
                  offset (uint64, counted from the start of the tensor data)
    zero padding up to a multiple of `general.alignment` (default 32)
    tensor data

A string is its length (uint64) followed by that many UTF-8 bytes.
"""

import mmap
import os
import struct
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUFValueType, LlamaFileType

HEADER_SIZE = 24  # magic, version, tensor count, metadata count
MAX_DIMS = 4  # llama.cpp's GGML_MAX_DIMS


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

    def skip(self, size: int) -> None:
        if self.pos + size > len(self.buffer):
            raise NotGGUF("the header runs past the end of the file (truncated?)")
        self.pos += size

    def string(self) -> str:
        length = self.take("Q")
        if self.pos + length > len(self.buffer):
            raise NotGGUF("a string in the header runs past the end of the file (truncated?)")
        value = bytes(self.buffer[self.pos:self.pos + length])
        self.pos += length
        return value.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.take("Q")
        if self.pos + length > len(self.buffer):
            raise NotGGUF("a string in the header runs past the end of the file (truncated?)")
        self.pos += length

    def value(self, kind: int, keep: bool):
        try:
            kind = GGUFValueType(kind)
        except ValueError:
            raise NotGGUF(f"unknown value type {kind}") from None
        if kind == GGUFValueType.STRING:
            return self.string() if keep else self.skip_string()
        if kind == GGUFValueType.ARRAY:
            item_kind, count = self.take("I"), self.take("Q")
            if item_kind in _SCALARS:
                self.skip(count * struct.calcsize("<" + _SCALARS[item_kind]))
            elif item_kind == GGUFValueType.STRING:  # such as a tokenizer's vocabulary
                for _ in range(count):
                    self.skip_string()
            else:
                for _ in range(count):
                    self.value(item_kind, keep=False)
            return None
        return self.take(_SCALARS[kind])


WANTED = {"general.architecture", "general.file_type", "general.alignment", "tokenizer.chat_template"}
# Per-architecture keys kept too (`gemma3.block_count`, ...): the context length, and what sizes the KV cache.
WANTED_SUFFIXES = (".context_length", ".block_count", ".embedding_length", ".attention.head_count",
                   ".attention.head_count_kv", ".attention.key_length", ".attention.value_length")


@dataclass
class TensorInfo:
    name: str
    dims: list[int]
    ggml_type: int
    offset: int  # from the start of the tensor data


@dataclass
class Header:
    """Where things are in a GGUF file's header, and the metadata values in WANTED."""
    version: int
    metadata: dict = field(default_factory=dict)
    # each metadata entry's key, and where its bytes (key, type and value) start and end in the file
    entries: list[tuple[str, int, int]] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    tensor_infos_start: int = 0
    tensor_infos_end: int = 0

    @property
    def alignment(self) -> int:
        return self.metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)

    @property
    def data_start(self) -> int:
        """Where the tensor data starts: after the tensor infos, padded to the alignment."""
        return -(-self.tensor_infos_end // self.alignment) * self.alignment


def read_header(buffer) -> Header:
    """Parses the header in `buffer` (bytes or an mmap); NotGGUF says where it is broken."""
    if len(buffer) < HEADER_SIZE:
        raise NotGGUF(f"the file is {len(buffer)} bytes, shorter than a GGUF header ({HEADER_SIZE} bytes)")
    cursor = _Cursor(buffer)
    if cursor.take("I") != GGUF_MAGIC:
        raise NotGGUF(f"bad magic {bytes(buffer[:4])!r}, not b'GGUF'")
    version = cursor.take("I")
    if version not in (2, 3):
        raise NotGGUF(f"unsupported GGUF version {version}")
    tensor_count, kv_count = cursor.take("Q"), cursor.take("Q")
    header = Header(version=version)
    for i in range(kv_count):
        start, key = cursor.pos, None
        try:
            key = cursor.string()
            kind = cursor.take("I")
            value = cursor.value(kind, keep=key in WANTED or key.endswith(WANTED_SUFFIXES))
        except NotGGUF as exc:
            named = f" ({key!r})" if key is not None else ""
            raise NotGGUF(f"metadata entry {i + 1} of {kv_count}{named}: {exc}") from None
        if value is not None:
            header.metadata[key] = value
        header.entries.append((key, start, cursor.pos))
    header.tensor_infos_start = cursor.pos
    for i in range(tensor_count):
        name = None
        try:
            name = cursor.string()
            n_dims = cursor.take("I")
            if n_dims > MAX_DIMS:
                raise NotGGUF(f"{n_dims} dimensions, more than {MAX_DIMS}")
            dims = [cursor.take("Q") for _ in range(n_dims)]
            ggml_type, offset = cursor.take("I"), cursor.take("Q")
        except NotGGUF as exc:
            named = f" ({name!r})" if name is not None else ""
            raise NotGGUF(f"tensor info {i + 1} of {tensor_count}{named}: {exc}") from None
        header.tensors.append(TensorInfo(name, dims, ggml_type, offset))
    header.tensor_infos_end = cursor.pos
    return header


def read_info(path: Path) -> GGUFInfo:
    """Reads the header; NotGGUF says what is wrong with a file that is not a whole GGUF."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            header = read_header(buffer)
    except (NotGGUF, ValueError, OSError) as exc:  # empty file, bad magic, truncated header, ...
        raise NotGGUF(f"{path.name} is not a valid GGUF file: {exc}") from exc
    meta = header.metadata
    arch = meta.get("general.architecture", "")
    file_type = meta.get("general.file_type")
    try:
        quant = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else ""
    except ValueError:
        quant = str(file_type)
    return GGUFInfo(architecture=arch, parameter_count=sum(prod(t.dims) for t in header.tensors),
                    quantization=quant, context_length=meta.get(f"{arch}.context_length"),
                    chat_template=meta.get("tokenizer.chat_template", ""), tensor_count=len(header.tensors))


def check_structure(path: Path) -> list[str]:
    """Checks that the header parses and every tensor's data lies inside the file, without reading the data.

    Returns the problems found, in words; an empty list means the file looks whole.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_SIZE:
                return [f"the file is {size} bytes, shorter than a GGUF header ({HEADER_SIZE} bytes)"]
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                header = read_header(buffer)
    except NotGGUF as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"cannot read the file: {exc}"]

    alignment = header.alignment
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        return [f"general.alignment is {alignment!r}, not a power of two"]
    if header.data_start > size:
        return [f"the tensor data would start at byte {header.data_start:,}, "
                f"past the end of the file ({size:,} bytes) (truncated?)"]

    problems = []
    for tensor in header.tensors:  # stops at the first broken tensor: naming it is enough
        if tensor.ggml_type not in GGML_QUANT_SIZES:
            problems.append(f"tensor '{tensor.name}' has unknown ggml type {tensor.ggml_type}")
            break
        block_size, type_size = GGML_QUANT_SIZES[tensor.ggml_type]
        if tensor.dims and tensor.dims[0] % block_size:
            problems.append(f"tensor '{tensor.name}' has rows of {tensor.dims[0]} values, "
                            f"not a multiple of its type's block size {block_size}")
            break
        if tensor.offset % alignment:
            problems.append(f"tensor '{tensor.name}' starts at offset {tensor.offset:,}, "
                            f"not a multiple of the alignment {alignment}")
            break
        end = header.data_start + tensor.offset + prod(tensor.dims) // block_size * type_size
        if end > size:
            problems.append(f"tensor '{tensor.name}' ends {end - size:,} bytes past the end of the file (truncated?)")
            break
    return problems


def kv_cache_bytes_per_token(path: Path) -> int:
    """What one token of context costs in the KV cache (f16 keys and values, every layer);
    0 when the header does not say."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            meta = read_header(buffer).metadata
    except (NotGGUF, ValueError, OSError):
        return 0
    arch = meta.get("general.architecture", "")
    layers, embedding = meta.get(f"{arch}.block_count"), meta.get(f"{arch}.embedding_length")
    heads = meta.get(f"{arch}.attention.head_count")
    if not (layers and embedding and heads):
        return 0
    heads_kv = meta.get(f"{arch}.attention.head_count_kv") or heads
    key = meta.get(f"{arch}.attention.key_length") or embedding // heads
    value = meta.get(f"{arch}.attention.value_length") or key
    return int(layers * heads_kv * (key + value) * 2)
