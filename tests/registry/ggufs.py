"""Small GGUF files for tests: valid headers and tensor tables over random data (not loadable as a model)."""

from pathlib import Path

import gguf
import numpy as np

ROW = 256  # values in a row of each tensor


def write_tiny_gguf(path: Path, *, arch: str = "llama", size_mb: float = 3, seed: int = 0,
                    chat_template: str | None = None) -> Path:
    """Writes a GGUF of about `size_mb` MiB holding four F32 tensors of random bytes; returns `path`.

    The same seed gives the same file; another seed gives other tensor data.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, int(size_mb * 1024 * 1024) // (4 * ROW * 4))  # 4 tensors of 4-byte values
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(f"tiny-{arch}-{seed}")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(2048)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for i in range(4):
        data = np.frombuffer(rng.bytes(rows * ROW * 4), dtype=np.float32).reshape(rows, ROW)
        writer.add_tensor(f"blk.{i}.ffn_up.weight", data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)
