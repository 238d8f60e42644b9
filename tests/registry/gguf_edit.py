"""Writing a copy of a GGUF file with one metadata string changed, such as a fixed chat template.

Only the header is rebuilt: the other metadata entries and the tensor infos are
copied byte for byte (a tensor's offset counts from the start of the tensor
data, so it stays valid), and the tensor data is streamed across unchanged.
"""

import mmap
import shutil
import struct
from pathlib import Path

from gguf import GGUF_MAGIC, GGUFValueType

from registry.gguf_info import NotGGUF, read_header

COPY_BLOCK = 16 * 1024 * 1024


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def set_metadata_string(src: Path, dst: Path, key: str, value: str) -> None:
    """Writes to `dst` a copy of the GGUF file `src` whose metadata `key` holds the string `value`.

    The new entry takes the place of the one with the same key, if any, or else comes last.
    Raises NotGGUF if `src` is not a whole GGUF header.
    """
    if key == "general.alignment":
        raise ValueError("general.alignment must stay a number")
    if Path(dst).resolve() == Path(src).resolve():
        raise ValueError("dst must be another file than src")
    new_entry = _string(key) + struct.pack("<I", GGUFValueType.STRING) + _string(value)

    with open(src, "rb") as source:
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            header = read_header(buffer)
            if header.data_start > len(buffer):
                raise NotGGUF(f"{Path(src).name}: the tensor data starts past the end of the file (truncated?)")
            entries = [new_entry if entry_key == key else bytes(buffer[start:end])
                       for entry_key, start, end in header.entries]
            if key not in (entry_key for entry_key, _, _ in header.entries):
                entries.append(new_entry)
            tensor_infos = bytes(buffer[header.tensor_infos_start:header.tensor_infos_end])

        new_header = (struct.pack("<IIQQ", GGUF_MAGIC, header.version, len(header.tensors), len(entries))
                      + b"".join(entries) + tensor_infos)
        padding = -len(new_header) % header.alignment
        with open(dst, "wb") as out:
            out.write(new_header + b"\0" * padding)
            source.seek(header.data_start)
            shutil.copyfileobj(source, out, COPY_BLOCK)  # the tensor data, unchanged
