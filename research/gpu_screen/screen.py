"""A GPU screen of default-model variants on the cell-group `val` split (never TEST), for a GPU
machine that has PyTorch but no TensorFlow (the device machines here).

A re-statement in PyTorch of what the Trainer does: models/trainer/architectures.py's default model,
augment.py's augmentation, run_fn.py's Adam with a per-epoch cosine schedule, and its input order (two
class-ordered files read in turn through a 2,048-record shuffle buffer, or a whole-split shuffle).
It is for ranking variants against each other within one run, three seeds each, in minutes instead
of the 35 (now) to 90 (before f84598c) minutes of a CPU probe; a variant worth adopting still gets a
CPU probe through the real pipeline (research/val_probe.py). Its `base` variant is the default model as it was before
f84598c (stride-1 first convolution, 2,048-record buffer). If the Trainer changes, change this too.

    # here: the crops of a finished full-data run (never TEST)
    infra/env/run.sh python -m research.gpu_screen.export_crops --pipeline-root RUN/bloodcell/pipeline_root \
        --out .gpu/crops_jpeg.npz   # .gpu/ listed in .git/info/exclude
    # on the GPU machine (device tool, carry [".gpu"]): every variant x seed as its own process
    VARIANTS="base stem2" bash research/gpu_screen/run_all.sh

Cross-validation by cell instead (all of TRAIN's ~217 cells, each held out once, not `val`'s 29):
    infra/env/run.sh python -m research.gpu_screen.export_cells --train ../shared/data/blood-cells/images/TRAIN \
        --out .gpu/cells/train_cells.npz
    FOLDS=5 SEEDS="1 2" VARIANTS="full_stem2" bash research/gpu_screen/run_all.sh   # carry [".gpu/cells"]
    python3 research/gpu_screen/cv_report.py --cells .gpu/cells/train_cells.npz --results RESULTS.json
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cv_report import decode_jpegs, fold_of_groups, right_and_confidently_wrong  # run from this folder (run_all.sh)

WEAK_COLOUR = dict(hue=0.03, saturation=(0.8, 1.25), gain=0.05)   # probe af89401's weaker colour range
VARIANTS = {
    "base": dict(),
    "base_fullshuffle": dict(shuffle="full"),
    "stem2": dict(stem_stride=2),
    "stem2_wide": dict(stem_stride=2, widths=(48, 96, 192, 384)),
    "base_8ep": dict(epochs=8),
    "stem2_16ep": dict(stem_stride=2, epochs=16),
    "full_base": dict(shuffle="full"),
    "full_stem2": dict(shuffle="full", stem_stride=2),
    "full_stem2_10ep": dict(shuffle="full", stem_stride=2, epochs=10),
    "full_stem2_16ep": dict(shuffle="full", stem_stride=2, epochs=16),
    "full_stem2_wide": dict(shuffle="full", stem_stride=2, widths=(48, 96, 192, 384)),
    "full_stem2_lr2": dict(shuffle="full", stem_stride=2, lr=2e-3),
    "full_stem2_weakcolour": dict(shuffle="full", stem_stride=2, **WEAK_COLOUR),
    "full_stem2_hue03": dict(shuffle="full", stem_stride=2, hue=0.03),    # only the hue turn weaker
    "full_stem2_hue06": dict(shuffle="full", stem_stride=2, hue=0.06),
    # on the stain-normalised crops of export_cells.py --stain-arms (models/transform/stain.py)
    "full_stem2_norm": dict(shuffle="full", stem_stride=2, arm="norm"),
    "full_stem2_weakcolour_norm": dict(shuffle="full", stem_stride=2, **WEAK_COLOUR, arm="norm"),
    "full_stem2_hue06_norm": dict(shuffle="full", stem_stride=2, hue=0.06, arm="norm"),
    # training length, on export_cells.py --every 2 (half the copies, so 24 epochs take as many steps as 12 on all)
    "full_stem2_6ep": dict(shuffle="full", stem_stride=2, epochs=6),
    "full_stem2_24ep": dict(shuffle="full", stem_stride=2, epochs=24),
    "full_stem2_weakcolour_norm_6ep": dict(shuffle="full", stem_stride=2, **WEAK_COLOUR, arm="norm", epochs=6),
    "full_stem2_weakcolour_norm_24ep": dict(shuffle="full", stem_stride=2, **WEAK_COLOUR, arm="norm", epochs=24),
}
DEFAULTS = dict(widths=(32, 64, 128, 256), stem_stride=1, epochs=12, lr=1e-3, batch=32, shuffle="pipeline",
                dropout=0.3, hue=0.1, saturation=(0.6, 1.4), gain=0.1, arm="all")
DERIVED_VIEWS = {"rec": "recoloured", "mag": "magnified"}  # export_cells.py's derived frames: file prefix -> split


def load(path, limit=None):
    """export_crops.py's file: its train and val splits."""
    d = np.load(path)
    out = {}
    for s in ("train", "val"):
        n_all = len(d[f"{s}_len"])
        n = n_all if limit is None else min(limit, n_all)
        idx = np.linspace(0, n_all - 1, n).astype(int)
        out[s] = (decode_jpegs(d, s, idx), d[f"{s}_y"][idx])
    return out


def load_fold(path, folds, fold, limit=None, arm="all"):
    """export_cells.py's file: every TRAIN crop (of `arm`); `val` is one fold of whole cell groups, `train`
    the rest. Also returns the held-out images' indices in the file, and where the file has frame-recoloured
    or magnified copies, those of the held-out images as `recoloured` and `magnified` splits."""
    d = np.load(path)
    y, groups = d["all_y"], d["all_group"]
    of = fold_of_groups(groups, y, folds)
    index = {"train": np.flatnonzero(of != fold), "val": np.flatnonzero(of == fold)}
    if limit is not None:
        index = {s: i[np.linspace(0, len(i) - 1, min(limit, len(i))).astype(int)] for s, i in index.items()}
    data = {s: (decode_jpegs(d, arm, i), y[i]) for s, i in index.items()}
    for view, split in DERIVED_VIEWS.items():
        if f"{view}_index" in d.files:  # `rec_*` beside `all_*`, `normrec_*` beside `norm_*`
            held = np.flatnonzero(np.isin(d[f"{view}_index"], index["val"]))
            data[split] = (decode_jpegs(d, view if arm == "all" else arm + view, held), y[d[f"{view}_index"][held]])
    return data, index["val"]


def sep_block(cin, cout):
    return [nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1), nn.ReLU(inplace=True)]


class Net(nn.Module):
    def __init__(self, widths, stem_stride, dropout):
        super().__init__()
        layers = [nn.Conv2d(3, widths[0], 3, stride=stem_stride, padding=1, bias=False),
                  nn.BatchNorm2d(widths[0], eps=1e-3, momentum=0.1), nn.ReLU(inplace=True)]
        cin = widths[0]
        for f in widths[1:]:
            layers += sep_block(cin, f) + sep_block(f, f) + [nn.MaxPool2d(2)]
            cin = f
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, 4)

    def forward(self, x):
        return self.fc(self.drop(self.features(x * 2 - 1).mean((2, 3))))


def rgb_to_hsv(x):
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    dc = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2 + rc - bc, 4 + gc - rc))
    h = torch.where(delta > 0, (h / 6) % 1.0, torch.zeros_like(h))
    return h, s, maxc


def hsv_to_rgb(h, s, v):
    i = torch.floor(h * 6)
    f = h * 6 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = (i.long() % 6).unsqueeze(1)
    r = torch.stack([v, q, p, p, t, v], 1).gather(1, i)
    g = torch.stack([t, v, v, q, p, p], 1).gather(1, i)
    b = torch.stack([p, p, t, v, v, q], 1).gather(1, i)
    return torch.cat([r, g, b], 1)


def uni(shape, lo, hi, g, dev):
    return torch.rand(shape, generator=g, device=dev) * (hi - lo) + lo


def augment(x, g, hue=0.1, saturation=(0.6, 1.4), gain=0.1):
    """x: float [B,3,S,S] in [0,1]. Zoom 0.75-1.4 (log-uniform), shift 8 %, mirror, rot90, recolour."""
    B, _, S, _ = x.shape
    dev = x.device
    scale = torch.exp(-uni((B,), math.log(0.75), math.log(1.4), g, dev))
    shift = uni((B, 2), -0.08, 0.08, g, dev) * 2
    k = torch.randint(0, 4, (B,), generator=g, device=dev).float() * (math.pi / 2)
    fx = torch.randint(0, 2, (B,), generator=g, device=dev).float() * 2 - 1
    c, s = torch.cos(k), torch.sin(k)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = c * fx * scale, -s * scale
    theta[:, 1, 0], theta[:, 1, 1] = s * fx * scale, c * scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (B, 3, S, S), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False).clamp(0, 1)
    x = x + uni((B, 1, 1, 1), -0.08, 0.08, g, dev)
    m = x.mean((2, 3), keepdim=True)
    x = ((x - m) * uni((B, 1, 1, 1), 0.8, 1.25, g, dev) + m).clamp(0, 1)
    h, sat, v = rgb_to_hsv(x)
    sat = (sat * uni((B, 1, 1), *saturation, g, dev)).clamp(0, 1)
    h = (h + uni((B, 1, 1), -hue, hue, g, dev)) % 1.0
    x = hsv_to_rgb(h, sat, v) * uni((B, 3, 1, 1), 1 - gain, 1 + gain, g, dev)
    return x.clamp(0, 1)


def pipeline_order(n, rng, buffer=2048):
    """What run_fn's reader gives: 2 class-ordered files read round-robin, then a 2,048-image buffer."""
    half = n // 2
    files = [np.arange(0, half), np.arange(half, n)]
    if rng.random() < 0.5:
        files.reverse()
    stream = np.empty(n, int)
    stream[0::2], stream[1::2] = files[0][: (n + 1) // 2], files[1][: n // 2]
    buf, out = list(stream[:buffer]), []
    for item in stream[buffer:]:
        j = rng.integers(len(buf))
        out.append(buf[j])
        buf[j] = item
    rng.shuffle(buf)
    return np.array(out + buf)


def dihedral(x):
    t = x.transpose(2, 3)
    return [v for base in (x, t) for v in (base, base.flip(2), base.flip(3), base.flip(2).flip(3))]


def recoloured(x):
    """benchmarks/quality/derived.py's `recoloured` stain (hue +0.08 turn, saturation x0.7, value x1.1),
    here on the crop rather than the frame before it is cropped: for ranking robustness, not a figure."""
    h, sat, v = rgb_to_hsv(x)
    return hsv_to_rgb((h + 0.08) % 1.0, sat * 0.7, (v * 1.1).clamp(0, 1)).clamp(0, 1)


@torch.no_grad()
def eight_view_probs(model, xs, bs=256, recolour=False):
    """Probabilities of the first view and the mean of all 8, [n, 4] each."""
    model.eval()
    p1, p8 = [], []
    for i in range(0, len(xs), bs):
        x = xs[i:i + bs].permute(0, 3, 1, 2).float() / 255
        if recolour:
            x = recoloured(x)
        views = [F.softmax(model(v.contiguous(memory_format=torch.channels_last)), 1) for v in dihedral(x)]
        p1.append(views[0])
        p8.append(torch.stack(views).mean(0))
    return torch.cat(p1).cpu().numpy(), torch.cat(p8).cpu().numpy()


def evaluate(model, xs, ys, robustness=False, review_threshold=0.8, derived=None):
    """With robustness: also the recoloured crops, right and wrong-but-confident (top probability at or
    over the web client's review threshold, config.yaml's browser.review_threshold, so not flagged by
    confidence; the review score is not here). derived: {"recoloured"/"magnified": (crops, labels)} of
    frames changed before the crop (export_cells.py); without "recoloured" the crops themselves are
    recoloured."""
    p1, prob = eight_view_probs(model, xs)
    y = ys.cpu().numpy()
    res = {}
    for name, p in (("one_view", p1), ("eight_view", prob)):
        pred = p.argmax(1)
        res[name] = float((pred == y).mean())
        res[name + "_recall"] = [round(float((pred[y == c] == c).mean()), 4) for c in range(4)]
    res["eight_view_prob"] = prob
    conf = prob.max(1)
    correct = prob.argmax(1) == y
    bins = np.clip((conf * 10).astype(int), 0, 9)
    res["ece_eight_view"] = float(sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean()
                                      for b in range(10) if (bins == b).any()))
    if robustness:
        derived = derived or {}
        for split in DERIVED_VIEWS.values():
            if split in derived:
                _, p = eight_view_probs(model, derived[split][0])
                y = derived[split][1].cpu().numpy()
                res[f"{split}_images"] = len(y)
            elif split == "recoloured":
                _, p = eight_view_probs(model, xs, recolour=True)
                y = ys.cpu().numpy()
            else:
                continue
            res[f"{split}_eight_view"], res[f"{split}_confident_wrong"] = right_and_confidently_wrong(
                p, y, review_threshold)
    return res


def train(cfg, data, seed, dev, log, keep_prob=False):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator(device=dev)
    g.manual_seed(seed)
    model = Net(cfg["widths"], cfg["stem_stride"], cfg["dropout"]).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], eps=1e-7)
    xtr, ytr = data["train"]
    n, E, bs = len(xtr), cfg["epochs"], cfg["batch"]
    curve, started = [], time.time()
    for epoch in range(E):
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * epoch / E))
        order = pipeline_order(n, rng) if cfg["shuffle"] == "pipeline" else rng.permutation(n)
        order = torch.as_tensor(order, device=dev)
        model.train()
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            x = augment(xtr[idx].permute(0, 3, 1, 2).float() / 255, g, cfg["hue"], cfg["saturation"],
                        cfg["gain"]).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ev = evaluate(model, *data["val"])
        curve.append(round(ev["one_view"], 4))
        log(f"  epoch {epoch + 1}/{E} loss {loss.item():.3f} val one-view {ev['one_view']:.4f} "
            f"8-view {ev['eight_view']:.4f} ({time.time() - started:.0f} s)")
    res = evaluate(model, *data["val"], robustness=True,
                   derived={s: data[s] for s in DERIVED_VIEWS.values() if s in data})
    prob = res.pop("eight_view_prob")
    if keep_prob:
        res["eight_view_prob"] = np.round(prob, 4).tolist()
    res.update(seed=seed, seconds=round(time.time() - started, 1), val_one_view_per_epoch=curve,
               params=sum(p.numel() for p in model.parameters()))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="images per split (smoke test)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--folds", type=int, default=0,
                    help="cross-validate by cell on export_cells.py's file: train on all folds but --fold")
    ap.add_argument("--fold", type=int, default=0)
    a = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    cfg = {**DEFAULTS, **VARIANTS[a.variant]}
    if a.epochs:
        cfg["epochs"] = a.epochs
    heldout = None
    if a.folds:
        raw, heldout = load_fold(a.data, a.folds, a.fold, a.limit, cfg["arm"])
    else:
        raw = load(a.data, a.limit)
    data = {s: (torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev).long()) for s, (x, y) in raw.items()}
    results = {"variant": a.variant, "config": cfg, "device": torch.cuda.get_device_name() if dev == "cuda" else dev,
               "torch": torch.__version__, "runs": []}
    if a.folds:  # the held-out images' indices and 8-view probabilities, to score by cell afterwards
        results.update(folds=a.folds, fold=a.fold, heldout_index=heldout.tolist())
    log = lambda m: print(f"[{a.variant}] {m}", flush=True)
    for seed in [int(s) for s in a.seeds.split(",")]:
        log(f"seed {seed}")
        results["runs"].append(train(cfg, data, seed, dev, log, keep_prob=bool(a.folds)))
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)
        r = results["runs"][-1]
        log(f"seed {seed}: one-view {r['one_view']:.4f} 8-view {r['eight_view']:.4f} recall {r['eight_view_recall']} "
            + "".join(f"{s} {r[s + '_eight_view']:.4f} ({r[s + '_confident_wrong']:.3f} confidently wrong) "
                      for s in DERIVED_VIEWS.values() if s + "_eight_view" in r) + f"{r['seconds']} s")


if __name__ == "__main__":
    main()
