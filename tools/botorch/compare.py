#!/usr/bin/env python3
"""The standard Bayesian optimiser on vgrid's measured surfaces.

Reads a surface (cmd/vgrid/testdata/surfaces/NAME.csv: every candidate of a
space measured once by an exhaustive vgrid run) and runs BoTorch on it the
way vgrid's search runs: a budget of 24 trials, the first 6 drawn uniformly
at random, then each proposal the untried candidate of largest log expected
improvement under a GP (SingleTaskGP: Matern 5/2 with one length scale per
feature, fitted by maximum marginal likelihood) over the enumerated
candidates. A candidate that failed or broke a constraint costs its trial
and enters the model at the worst value measured so far (the plain
treatment; vgrid's gp models failures with a second GP instead).

Features are built as vgrid builds them: an axis whose values are all
numbers is its rank scaled to [0, 1]; any other axis is one-hot.

It prints, per surface, the same row docs/search.md shows for vgrid's own
strategies (go test ./cmd/vgrid -run '^$' -bench SearchSurfaces):

    python3 tools/botorch/compare.py cmd/vgrid/testdata/surfaces/*.csv

Needs torch and botorch (the device machine has both; no GPU is used).
"""

import csv
import math
import sys
import warnings

import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

BUDGET, STARTUP, SEEDS = 24, 6, 20


def read_surface(path):
    with open(path, newline="") as f:
        lines = f.readlines()
    minimize = any(line.startswith("# minimize ") for line in lines)
    rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    head, rows = rows[0], rows[1:]
    axes = head[1 : head.index("outcome")]
    return head, axes, rows, head.index("objective"), minimize


def features(head, axes, rows):
    cols = []
    for a in axes:
        i = head.index(a)
        values = sorted({r[i] for r in rows}, key=lambda v: (float(v) if is_num(v) else 0, v))
        if all(is_num(v) for v in values):
            order = sorted(values, key=float)
            scale = max(len(order) - 1, 1)
            cols.append([[order.index(r[i]) / scale] for r in rows])
        else:
            cols.append([[1.0 if r[i] == v else 0.0 for v in values] for r in rows])
    return torch.tensor([sum((c[k] for c in cols), []) for k in range(len(rows))], dtype=torch.float64)


def is_num(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def search(x, y, seed):
    """y: the objective to maximise, NaN where not measured; returns the best found."""
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    tried = []
    for t in range(BUDGET):
        left = [i for i in range(n) if i not in tried]
        measured = [i for i in tried if not math.isnan(y[i])]
        if t < STARTUP or len(measured) < 2:
            tried.append(left[torch.randint(len(left), (1,), generator=g).item()])
            continue
        worst = min(y[i] for i in measured)
        train_x = x[tried]
        train_y = torch.tensor([[worst if math.isnan(y[i]) else y[i]] for i in tried], dtype=torch.float64)
        model = SingleTaskGP(train_x, train_y, outcome_transform=Standardize(m=1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = LogExpectedImprovement(model, best_f=max(y[i] for i in measured))
        with torch.no_grad():
            scores = acq(x[left].unsqueeze(1))
        tried.append(left[int(scores.argmax())])
    found = [y[i] for i in tried if not math.isnan(y[i])]
    return max(found) if found else float("nan")


def main(paths):
    torch.manual_seed(0)
    for path in paths:
        head, axes, rows, obj, minimize = read_surface(path)
        raw = [float(r[obj]) if r[obj] else float("nan") for r in rows]
        sign = -1.0 if minimize else 1.0
        y = [sign * v for v in raw]
        best = max(v for v in y if not math.isnan(v))
        x = features(head, axes, rows)
        gaps = []
        for seed in range(1, SEEDS + 1):
            got = search(x, y, seed)
            gaps.append(100.0 if math.isnan(got) else 100 * abs(got - best) / abs(best))
        gaps.sort()
        w2 = sum(gap <= 2 for gap in gaps)
        w5 = sum(gap <= 5 for gap in gaps)
        print(f"{path}: {len(rows)} candidates, best {sign * best:.1f} ({'minimize' if minimize else 'maximize'})")
        print(f"| BoTorch GP + LogEI, {STARTUP} random starts | {w2}/{SEEDS} | {w5}/{SEEDS} | {gaps[SEEDS // 2]:.1f}% | {gaps[-1]:.1f}% |")
        print(f"  gaps by seed (sorted): {' '.join(f'{g:.1f}' for g in gaps)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
