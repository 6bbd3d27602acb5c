"""History: a finished comparison, kept runnable; its record lies beside this file.

Input-pipeline benchmark: the same Model_3 training steps fed by

  (a) the seed-style pipeline: torchvision MNIST + RandomAffine/ToTensor/Normalize + DataLoader
      (shuffle, 2 workers), and
  (b) this project's Loader: MNIST held as tensors on the device, rotated and shifted per batch there.

Both run in one process, alternating, several repeats; it prints images/second for each, the
ratio b/a and the hardware, and writes them to experiments/pipeline/benchmark.json (or --out).

    python experiments/pipeline/pipeline.py [--batches 200] [--repeats 3] [--device auto]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torchvision import datasets, transforms

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import records  # noqa: E402
import utils  # noqa: E402
from model import Model_3  # noqa: E402


def seed_style_loader(root, batch_size, workers, degrees=7.0, translate=0.0):
    tf = transforms.Compose([transforms.RandomAffine(degrees, translate=(translate, translate) if translate else None,
                                                     fill=0), transforms.ToTensor(),
                             transforms.Normalize((utils.MEAN,), (utils.STD,))])
    utils.check_mnist_files(root)
    data = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                       num_workers=workers, pin_memory=torch.cuda.is_available())


def timed_steps(model, optimizer, batches, device, n):
    """Seconds for n training steps drawn from a fresh pass over `batches` (workers start too)."""
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        if i == n:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        utils.train_step(model, x, y, optimizer)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def hardware(device):
    cpu = f"{records.device_name('cpu')}"
    return cpu if device.type == "cpu" else f"{records.device_name(device)} + {cpu}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=200, help="training steps per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each pipeline")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for (a)")
    p.add_argument("--device", default="auto")
    p.add_argument("--degrees", type=float, default=7.0, help="rotation range, as in Step 3")
    p.add_argument("--translate", type=float, default=0.05, help="shift range, as in Step 3")
    p.add_argument("--data-dir", help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "benchmark.json"))
    args = p.parse_args(argv)
    if args.batches < 1 or args.repeats < 1:
        p.error("--batches and --repeats must be at least 1")
    device = utils.get_device(args.device)
    root = utils.data_dir(args.data_dir)
    utils.set_seed(0)
    model = Model_3().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    a_loader = seed_style_loader(root, args.batch_size, args.workers, args.degrees, args.translate)
    train_x, train_y = utils.load_mnist(root, train=True)
    b_loader = utils.Loader(train_x, train_y, args.batch_size, shuffle=True, degrees=args.degrees,
                            translate=args.translate, device=device)
    timed_steps(model, optimizer, b_loader, device, 10)  # warm-up: kernels, allocator
    times = {"a": [], "b": []}
    for r in range(args.repeats):
        times["a"].append(timed_steps(model, optimizer, a_loader, device, args.batches))
        times["b"].append(timed_steps(model, optimizer, b_loader, device, args.batches))
        print(f"repeat {r + 1}: (a) {times['a'][-1]:.2f} s  (b) {times['b'][-1]:.2f} s", flush=True)
    images = args.batches * args.batch_size
    a_rate, b_rate = (images / statistics.median(times[k]) for k in ("a", "b"))
    result = dict(records.provenance(device), hardware=hardware(device), degrees=args.degrees,
                  translate=args.translate, batches=args.batches, batch_size=args.batch_size, repeats=args.repeats,
                  workers=args.workers, a_seconds=times["a"], b_seconds=times["b"],
                  a_images_per_s=a_rate, b_images_per_s=b_rate, ratio=b_rate / a_rate)
    print(f"hardware: {result['hardware']}")
    print(f"(a) torchvision transforms + DataLoader({args.workers} workers): {a_rate:,.0f} images/s")
    print(f"(b) tensors on {device.type} + batched rotation and shift:  {b_rate:,.0f} images/s")
    print(f"ratio b/a: {result['ratio']:.2f}x")
    records.write_json(result, args.out)
    print(f"wrote {os.path.relpath(args.out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
