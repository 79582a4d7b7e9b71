#!/usr/bin/env python
"""Bundle a trained checkpoint as ``zoo:NAME``: rename it, store its weights (optionally in float16), record provenance.

    .venv/bin/python experiments/pack_zoo.py --model reports/reproduction/cifar10-fast/models/pgd-at-eps8.pt \\
        --name pgd-at --half

Writes ``robench/assets/zoo/NAME.pt`` (and copies the training log beside it as ``NAME.log.csv``)
and records in ``robench/assets/zoo/zoo.json``: the source file and its sha256, the stored weight
type, and the clean accuracy on the 1,000 bundled sample images of the source (full precision)
and of the stored model. ``tests/test_zoo.py`` checks that the stored model still reaches the
recorded full-precision accuracy within ±0.2 points (`test_packed_zoo_model_keeps_its_full_precision_accuracy`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from robench.data import load_dataset
from robench.io import write_text_atomic
from robench.models.checkpoint import save_checkpoint
from robench.models.loading import load_model
from robench.models.wrapper import RobenchModel
from robench.zoo import zoo_dir


def sample_accuracy(model: RobenchModel) -> float:
    """Clean accuracy on the 1,000 bundled sample images."""
    data, correct = load_dataset("sample"), 0
    with torch.no_grad():
        for _, x, y in data.batches(250):
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(data)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="trained robench checkpoint")
    p.add_argument("--name", required=True, help="zoo name (zoo:NAME)")
    p.add_argument("--half", action="store_true", help="store the weights in float16")
    args = p.parse_args()
    source = load_model(str(args.model))
    source.info.name = args.name
    out = zoo_dir() / f"{args.name}.pt"
    save_checkpoint(source, out, torch.float16 if args.half else None)
    log = Path(f"{args.model}.log.csv")
    if log.exists():
        shutil.copyfile(log, zoo_dir() / f"{args.name}.log.csv")
    stored = load_model(str(out))
    record_path = zoo_dir() / "zoo.json"
    records = json.loads(record_path.read_text()) if record_path.exists() else {}
    records[args.name] = {"source": str(args.model), "source_sha256": source.info.sha256,
                          "stored_dtype": "float16" if args.half else "float32",
                          "sample_accuracy_full_precision": sample_accuracy(source),
                          "sample_accuracy_stored": sample_accuracy(stored), "bytes": out.stat().st_size}
    write_text_atomic(record_path, json.dumps(records, indent=1, sort_keys=True) + "\n")
    print(json.dumps(records[args.name], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
