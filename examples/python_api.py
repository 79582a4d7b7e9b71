"""robench from Python: evaluate bundled and plain PyTorch models, save and reload runs, compare them.

    .venv/bin/python examples/python_api.py [--limit 64] [--out runs/python-api]

Each step is one call of the API in docs/python-api.md; the test suite runs this file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import robench


def main(limit: int, out: Path) -> None:
    # 1. A bundled model on the bundled lossless CIFAR-10 sample: the inequality suite with its defaults.
    standard = robench.evaluate("zoo:standard", "sample", suites="inequality", limit=limit)
    print(standard.results.shape, standard.per_image.shape)
    print({k: round(v, 3) for k, v in standard.headline().items() if k in ("clean_accuracy", "gini_pixel")})

    # 2. Any nn.Module: wrap it with its normalisation, then evaluate it like a checkpoint.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(16, 10))
    model = robench.wrap(net, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), name="untrained-cnn")
    plain = robench.evaluate(model, "sample", suites="clean", limit=limit)
    print(f"untrained accuracy {plain.headline()['clean_accuracy']:.3f}")

    # 3. Images from memory (a tensor N×C×H×W in [0, 1] and labels), and suite options by their config names.
    x, y = robench.load_data("sample", limit=limit).batch(0, limit)
    robust = robench.evaluate("zoo:pgd-at", robench.load_data(x, y), suites="inequality,adversarial",
                              ina_budgets=(0.01, 0.02), eps="2/255,8/255")
    print(robust.results.query("test == 'pgd'")[["param", "metric", "value"]].to_string(index=False))

    # 4. Save, reload, compare: the same files as `robench evaluate --out` and `robench compare`.
    standard.save(out / "standard")
    again = robench.load_run(out / "standard")
    assert again.per_image["index"].tolist() == standard.per_image["index"].tolist()
    pgd_at = robench.evaluate("zoo:pgd-at", "sample", suites="inequality", limit=limit, out=out / "pgd-at")
    table = robench.compare([standard, pgd_at], out=out / "report")
    print(table.query("scope == 'common' and test == 'gini'").to_string(index=False))
    print(f"report: {out / 'report' / 'report.html'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/python-api"))
    args = parser.parse_args()
    main(args.limit, args.out)
