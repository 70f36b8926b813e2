"""The fused Llama decode step (``mlnode/fused_decode.py``) against transformers' forward pass
over the same slot cache, on the 8B shape with random weights, on CUDA: each one's logit error
against transformers in float32, and each step's time replayed from a CUDA graph and kernel
count (bf16, one and four rows over 128 columns).

    python3 bench/fused_decode_check.py
"""

import argparse
import sys
import time
from collections.abc import Callable

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from mlnode.fused_decode import FusedLlamaDecode
from mlnode.static_decode import SlotCache

CUDA = torch.autograd.DeviceType.CUDA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="accepted for make bench; the check is the same (seconds on a GPU)")
    parser.parse_args()
    if not torch.cuda.is_available():
        # make bench runs every script on machines without a GPU: say so rather than fail.
        print("fused_decode_check: no CUDA device here, nothing measured (the H200 figures "
              "are in bench/results/mlnode-h200-decode.md)", file=sys.stderr)
        return
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, intermediate_size=14336,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
        max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    kv = torch.randn(32, 2, 8, 8, 512, 128, device="cuda")
    positions = torch.tensor([100, 37, 250, 5, 0, 0, 0, 0], device="cuda")
    tokens = torch.tensor([[5], [900], [4000], [17]], device="cuda")

    def step(fused: FusedLlamaDecode | None, dtype: torch.dtype, rows: int = 4,
             columns: int = 256) -> Callable[[], torch.Tensor]:
        cache = SlotCache(kv.to(dtype), positions)
        cache.batch, cache.columns = rows, columns
        at = positions[:rows, None]
        visible = (torch.arange(512, device="cuda")[None, :columns] <= at)[:, None, None, :]

        def run() -> torch.Tensor:
            if fused is not None:
                return fused.logits(tokens[:rows], at, visible, cache)
            return model(input_ids=tokens[:rows], attention_mask=visible, position_ids=at,
                         past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        return run

    with torch.inference_mode():
        reference = step(None, torch.float32)().float()
        fused32 = step(FusedLlamaDecode(model), torch.float32)().float()
        model.to(torch.bfloat16)
        fused = FusedLlamaDecode(model)
        for name, logits in (("fused fp32", fused32),
                             ("transformers bf16", step(None, torch.bfloat16)().float()),
                             ("fused bf16", step(fused, torch.bfloat16)().float())):
            error = (logits - reference).abs()
            same = (logits.argmax(-1) == reference.argmax(-1)).tolist()
            print(f"{name} vs transformers fp32: max {error.max().item():.4g} "
                  f"mean {error.mean().item():.4g} argmax equal {same}")
        print("logit std", reference.std().item())
        for rows in (1, 4):
            for name, path in (("transformers", None), ("fused", fused)):
                print(f"{name} step, {rows} rows x 128 columns, CUDA graph: "
                      f"{replayed_ms(step(path, torch.bfloat16, rows, 128)):.2f} ms; "
                      f"{kernels(step(path, torch.bfloat16, rows, 128))} kernels")


def replayed_ms(run: Callable[[], torch.Tensor]) -> float:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    for _ in range(5):
        graph.replay()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(50):
        graph.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / 50 * 1e3


def kernels(run: Callable[[], torch.Tensor]) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    return sum(event.count for event in prof.key_averages() if event.device_type == CUDA)


if __name__ == "__main__":
    main()
