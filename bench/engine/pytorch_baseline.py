#!/usr/bin/env python3
"""Same MLP and recipe as engine_bench, in PyTorch, for the retrain-speed
comparison ("lethe's own retraining is no slower than PyTorch's on the same
recipe"). Run in the same session as engine_bench (run.sh does).

MLP 784-256-128-10 (ReLU), SGD momentum 0.9, batch 128, lr decayed linearly
to 0 per step, inputs in [0, 1], the first N training images of
Fashion-MNIST. Prints one JSON line: training seconds, test accuracy, load.

  pytorch_baseline.py --train 5000 --epochs 80 [--threads 2] [--seed 0]
"""
import argparse
import gzip
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as lethe's InitRuntime

import numpy as np  # noqa: E402
import torch  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=DATA)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x = torch.from_numpy(idx(f"{a.data}/train-images-idx3-ubyte.gz", 16).copy())
    x = x.view(-1, 784)[: a.train].float() / 255
    y = torch.from_numpy(idx(f"{a.data}/train-labels-idx1-ubyte.gz", 8).copy())
    y = y[: a.train].long()
    xt = torch.from_numpy(idx(f"{a.data}/t10k-images-idx3-ubyte.gz", 16).copy())
    xt = xt.view(-1, 784).float() / 255
    yt = torch.from_numpy(idx(f"{a.data}/t10k-labels-idx1-ubyte.gz", 8).copy()).long()

    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    steps = a.epochs * ((a.train + 127) // 128)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        perm = torch.randperm(a.train)
        for b in range(0, a.train, 128):
            rows = perm[b:b + 128]
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        ta = (model(xt).argmax(1) == yt).float().mean().item()
    print(json.dumps({"framework": "pytorch " + torch.__version__,
                      "train_records": a.train, "epochs": a.epochs,
                      "threads": a.threads, "seconds": round(seconds, 3),
                      "test_accuracy": round(ta, 4), "load_avg_1m": load}))


if __name__ == "__main__":
    main()
