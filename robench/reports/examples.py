"""The example grid: images, their attribution maps with the inductive-noise pixels, and the occlusion that fooled.

Attribution maps are not stored by an evaluation (they would be as large as the dataset), so
the grid recomputes them for a few images: it reloads each run's model as the run recorded loading it
(``meta.json``'s ``model_loading``: every :class:`robench.settings.LoadOptions`, test-time flip included)
and its dataset from the recorded options, and checks that the checkpoint's sha256 and the dataset's
content fingerprint are the recorded ones. When either cannot be reloaded (moved, edited, offline),
:func:`example_grid` returns no figure and says why; the rest of the report does not need them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from robench.attacks.occlusion import OcclusionOrder, attribution_map, occlusion_mask, occlusion_steps
from robench.attribution import attribute
from robench.data import load_dataset
from robench.errors import RobenchError
from robench.models.loading import load_model
from robench.models.wrapper import RobenchModel
from robench.options import parse_size
from robench.reports.plots import OKABE_ITO, plt
from robench.run import Run
from robench.schema import number_label, occlusion_column
from robench.settings import LOAD_OPTIONS, AttributionOptions, LoadOptions, load_options, recorded_settings


def model_loading(meta: dict) -> LoadOptions:
    """How a run loaded its model: meta.json's ``model_loading`` record; for runs made before it, rebuilt from the
    recorded command-line options (text) and the model's recorded test-time flip."""
    if isinstance(meta.get("model_loading"), dict):
        return load_options({k: v for k, v in meta["model_loading"].items() if k in LOAD_OPTIONS})
    o = meta.get("options") or {}
    values = {k: o[k] for k in LOAD_OPTIONS if o.get(k) is not None}
    values["trust_checkpoint"] = bool(o.get("trust_checkpoint"))
    values["test_time_flip"] = bool(o.get("test_time_flip") or (meta.get("model") or {}).get("test_time_flip"))
    return load_options(values)


def reload_model(run: Run) -> RobenchModel:
    """The run's model, loaded as the evaluation did (:func:`model_loading`); RobenchError if it is gone or changed."""
    o = run.meta["options"]
    if not o.get("model"):
        raise RobenchError("the model was passed to robench.evaluate as a Python object, so it cannot be reloaded")
    model = load_model(o["model"], model_loading(run.meta))
    recorded = run.meta["model"].get("sha256")
    if recorded and model.info.sha256 and model.info.sha256 != recorded:
        raise RobenchError(f"checkpoint {o['model']} changed since {run.path} was evaluated (sha256 differs)")
    return model


def reload_images(run: Run, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (K × C × H × W in [0, 1]) and labels of per-image rows ``rows``, from the run's dataset."""
    o = run.meta["options"]
    if not o.get("data"):
        raise RobenchError("the images were passed to robench.evaluate from memory, so they cannot be reloaded")
    size = o.get("image_size")
    size = parse_size(size, "image_size") if isinstance(size, str) else size
    crop = {"crop_pct": float(o["crop_pct"])} if o.get("crop_pct") is not None else {}
    data = load_dataset(o["data"], o.get("split") or "test", o.get("data_dir"), o.get("limit"), o.get("seed", 0),
                        image_size=(size[0], size[-1]) if size else None, **crop)
    if data.fingerprint() != run.meta["dataset"].get("fingerprint"):
        raise RobenchError(f"the dataset {o['data']} changed since {run.path} was evaluated (fingerprint differs)")
    position = {int(i): p for p, i in enumerate(data.index)}
    wanted = run.per_image["index"].to_numpy()[rows]
    return data.subset(np.array([position[int(i)] for i in wanted])).batch(0, len(wanted))


def _occlusion_step(run: Run, row: int, fill: str, count: int, radius: int,
                    order: OcclusionOrder) -> tuple[int, int, bool]:
    """(n, r) of the first successful occlusion of per-image row ``row``, or (N, R) and False: the recorded
    count and radius, or for runs made before they were recorded (sweeps) the step reached after its queries."""
    fooled = float(run.per_image[occlusion_column(fill, "fooled").name].iloc[row]) > 0
    if not fooled:
        return count, radius, False
    recorded = [occlusion_column(fill, part).name for part in ("count", "radius")]
    if all(c in run.per_image for c in recorded):
        n, r = (int(run.per_image[c].iloc[row]) for c in recorded)
        return n, r, True
    q = int(run.per_image[occlusion_column(fill, "queries").name].iloc[row])  # stops at step q (1-based)
    n, r = occlusion_steps(count, radius, order)[q - 1]
    return n, r, True


def example_grid(runs: Sequence[Run], labels: Sequence[str], mask: np.ndarray, n_images: int = 4):  # type: ignore[no-untyped-def]
    """Figure (or None) and a note: per common-correct image, the image, then per model its |attribution|
    with the top-k inductive-noise entries (k at the largest budget) and the occlusion that fooled it."""
    rows = np.flatnonzero(mask)[:n_images]
    if len(rows) == 0:
        return None, "no image is classified correctly by every model, so there are no examples"
    if any("inequality" not in r.meta["suites"] for r in runs):
        return None, "examples need the inequality suite in every run"
    settings = [recorded_settings(r.meta["suites"]["inequality"]) for r in runs]
    try:
        x, y = reload_images(runs[0], rows)
    except (RobenchError, OSError, KeyError, ValueError) as exc:
        return None, f"examples skipped: {exc}"
    kept, models, missing = [], [], []  # a model that cannot be reloaded leaves the grid, said in the note
    for i, run in enumerate(runs):
        try:
            models.append(reload_model(run))
            kept.append(i)
        except (RobenchError, OSError, KeyError, ValueError) as exc:
            missing.append(f"{labels[i]} ({exc})")
    if not models:
        return None, f"examples skipped: {'; '.join(missing)}"
    runs, labels, settings = [runs[i] for i in kept], [labels[i] for i in kept], [settings[i] for i in kept]
    classes = runs[0].meta["dataset"].get("classes") or []
    fig, axes = plt.subplots(len(rows), 1 + 2 * len(runs), figsize=(1.9 * (1 + 2 * len(runs)), 2.0 * len(rows)),
                             squeeze=False)
    for j, row in enumerate(rows):
        img = x[j].permute(1, 2, 0).numpy()
        axes[j][0].imshow(img.squeeze(), cmap="gray" if img.shape[2] == 1 else None)
        axes[j][0].set_title(f"#{int(runs[0].per_image['index'].iloc[row])}: "
                             f"{classes[int(y[j])] if classes else int(y[j])}", fontsize=8)
    for m, (run, model, label, cfg) in enumerate(zip(runs, models, labels, settings)):
        first = run.attributions[0]  # the attacks' map
        options = AttributionOptions.of(cfg.get("attribution_options")).per_method(run.attributions)[first]
        attr = attribute(first, model, x, y, **options).detach()
        k = int(cfg["ina_k"][-1]) if cfg.get("ina_k") else 0
        fills = [number_label(f) for f in cfg.get("occlusion_fill", [])]
        fill = "0.5" if "0.5" in fills else (fills[0] if fills else None)
        amap = attribution_map(attr)
        for j, row in enumerate(rows):
            ax = axes[j][1 + 2 * m]
            magnitude = attr[j].abs().sum(0).numpy()
            ax.imshow(magnitude, cmap="magma", interpolation="nearest")
            if k:
                top = torch.zeros(attr[j].numel(), dtype=torch.bool)
                top[torch.topk(attr[j].flatten(), k).indices] = True
                ys, xs = np.nonzero(top.view_as(attr[j]).any(0).numpy())
                ax.scatter(xs, ys, s=4, c=OKABE_ITO[5], marker="s", linewidths=0)
            ax.set_title(f"{label}\n|attribution|, top {k}" if j == 0 else "", fontsize=8)
            ax2 = axes[j][2 + 2 * m]
            if fill is not None and occlusion_column(fill, "fooled").name in run.per_image:
                n, r, fooled = _occlusion_step(run, int(row), fill, cfg["occlusion_count"], cfg["occlusion_radius"],
                                               cfg["occlusion_order"])
                occ = occlusion_mask(amap[j:j + 1], n, r)[0]
                shown = x[j].clone()
                shown[:, occ] = float(fill)
                with torch.no_grad():
                    pred = int(model(shown[None]).argmax(1))
                ax2.imshow(shown.permute(1, 2, 0).numpy().squeeze(), cmap="gray" if shown.shape[0] == 1 else None)
                verdict = f"→ {classes[pred] if classes else pred}" if fooled else "not fooled"
                ax2.set_title(f"occl. n={n}, r={r}: {verdict}", fontsize=7)
            else:
                ax2.set_visible(False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Examples (common-correct images): |attribution| with the inductive-noise entries (cyan), "
                 "and the first occlusion that fooled each model", fontsize=9)
    fig.tight_layout()
    note = (f"examples: {len(rows)} of the {int(mask.sum())} common-correct images, attribution recomputed from the "
            "checkpoints")
    return fig, note + (f"; not shown: {'; '.join(missing)}" if missing else "")
