"""A second process for the seeding test against the real vLLM: starts its own ``vllm`` engine
on MODEL_DIR and prints, as one JSON line, the seeded samples (tests/vllm_cases.py) of the
requests in another batch order and of a batch of one.

    python tests/vllm_sample.py MODEL_DIR
"""

import json
import sys
from pathlib import Path


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from vllm_cases import SEEDED, requests

    from r3v_eval.engines.vllm import VLLMEngine

    engine = VLLMEngine(sys.argv[1], dtype="float32", max_model_len=1024, seed=7)
    reqs = requests()
    order = [3, 0, 2, 1]
    shuffled = engine.generate([reqs[i] for i in order], SEEDED, progress=False)
    samples = [None] * len(reqs)
    for i, out in zip(order, shuffled):
        samples[i] = out
    alone = engine.generate([reqs[2]], SEEDED, progress=False)[0]
    engine.close()
    print("R3V_SAMPLES " + json.dumps({"samples": samples, "alone_2": alone}), flush=True)


if __name__ == "__main__":  # vLLM spawns its engine process, which re-imports this file
    main()
