"""Record each panel checkpoint's predictions on the first 16 images of its dataset (first_batch.json).

    PYTHONPATH=. python experiments/third_party/record_first_batch.py

``tests/test_third_party.py`` checks that robench still gives exactly these predictions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from panel import HERE, data_spec, load, read_manifest  # noqa: E402

from robench.data import load_dataset  # noqa: E402

FIRST = 16
OUTPUT = HERE / "first_batch.json"


def main() -> None:
    """Write ``{file: [16 predicted classes]}`` for every manifest row."""
    predictions = {}
    for row in read_manifest():
        x, _ = load_dataset(data_spec(row)).batch(0, FIRST)
        with torch.no_grad():
            predictions[row["file"]] = load(row)(x).argmax(1).tolist()
    lines = ",\n".join(f" {json.dumps(name)}: {json.dumps(classes)}" for name, classes in predictions.items())
    OUTPUT.write_text("{\n" + lines + "\n}\n")
    print(f"{len(predictions)} checkpoints → {OUTPUT}")


if __name__ == "__main__":
    main()
