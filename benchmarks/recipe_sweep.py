"""Recipe sweep on held-out digits: K seeds of one recipe trained at once as one grouped net.

Each conv is Conv2d(K*cin, K*cout, groups=K): group k is model k, with its own data order,
augmentation, dropout and init; BN, SGD/Adam, EMA are elementwise, so the K models are
independent.  Train on the first 50,000 training images, score the last 10,000.
"""
import copy, gzip, json, math, os, sys, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081


def load_train(folder):
    with gzip.open(f"{folder}/train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{folder}/train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def build(arch, K, bn=True, dropout=0.0, head_bias=True):
    """arch: list of ('c', cout, k, pad, drop) and 'P'; then GAP + 1x1 head to 10."""
    layers, cin = [], 1
    for t in arch:
        if t == "P":
            layers.append(nn.MaxPool2d(2)); continue
        _, cout, k, pad, drop = t
        conv = nn.Conv2d(K * cin, K * cout, k, padding=pad, groups=K, bias=not bn)
        if not bn:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu"); nn.init.zeros_(conv.bias)
        layers.append(conv)
        if bn:
            layers.append(nn.BatchNorm2d(K * cout))
        layers.append(nn.ReLU())
        if drop and dropout > 0:
            layers.append(nn.Dropout(dropout))
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(K * cin, K * 10, 1, groups=K, bias=head_bias)]
    return nn.Sequential(*layers)


def params_per_model(arch, bn=True, head_bias=True):
    m = build(arch, 1, bn=bn, head_bias=head_bias)
    return sum(p.numel() for p in m.parameters())


def affine(x, degrees, translate, gen, scale=0.0):
    n = x.shape[0]
    r = torch.rand(n, 4, generator=gen, device=x.device)
    a = (r[:, 0] * 2 - 1) * math.radians(degrees)
    s = (r[:, 1:3] * 2 - 1) * translate * 2
    z = 1 + (r[:, 3] * 2 - 1) * scale
    c, si = torch.cos(a) / z, torch.sin(a) / z
    theta = torch.stack([torch.stack([c, -si, s[:, 0]], 1), torch.stack([si, c, s[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def run(cfg, K, seed, dev, train_x, train_y, val_x, val_y, epochs=15, log=print, max_steps=None):
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    model = build(cfg["arch"], K, dropout=cfg.get("dropout", 0.0), head_bias=cfg.get("head_bias", True)).to(dev)
    B, N = cfg.get("batch", 128), len(train_y)
    steps = math.ceil(N / B)
    lr = cfg.get("lr", 0.2)
    if cfg.get("opt", "sgd") == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=cfg.get("wd", 0.0))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=cfg.get("wd", 0.0))
    if cfg.get("sched", "onecycle") == "onecycle":
        sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs, steps_per_epoch=steps,
                                                  pct_start=cfg.get("pct", 0.3), cycle_momentum=False,
                                                  final_div_factor=cfg.get("fdiv", 100))
        per_batch = True
    else:
        sch = torch.optim.lr_scheduler.StepLR(opt, cfg.get("step", 8), cfg.get("gamma", 0.1))
        per_batch = False
    decay = cfg.get("ema", 0.998)
    ema_model = copy.deepcopy(model)
    live = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    avg = [t for t in list(ema_model.parameters()) + list(ema_model.buffers()) if t.is_floating_point()]
    n_avg = 0
    ls, clean = cfg.get("ls", 0.0), cfg.get("clean", 0)
    accs = []
    xv = ((val_x.float() / 255 - MEAN) / STD).unsqueeze(1)
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        aug = epoch <= epochs - clean
        perm = torch.argsort(torch.rand(K, N, generator=gen, device=dev), dim=1)  # (K, N)
        for s in range(0, N, B):
            idx = perm[:, s:s + B]                                    # (K, b)
            b = idx.shape[1]
            x = train_x[idx].float().div_(255).view(K * b, 1, 28, 28)
            if aug and (cfg.get("deg", 7.0) or cfg.get("tr", 0.1) or cfg.get("scale", 0.0)):
                x = affine(x, cfg.get("deg", 7.0), cfg.get("tr", 0.1), gen, cfg.get("scale", 0.0))
            x = ((x - MEAN) / STD).view(K, b, 28, 28).transpose(0, 1)   # (b, K, 28, 28)
            y = train_y[idx].t()                                       # (b, K)
            out = model(x).view(b * K, 10)
            loss = F.cross_entropy(out, y.reshape(-1), label_smoothing=ls, reduction="sum") / b
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if per_batch:
                sch.step()
            if decay:
                with torch.no_grad():
                    if n_avg == 0:
                        torch._foreach_copy_(avg, live)
                    else:
                        d = min(decay, (1 + n_avg) / (10 + n_avg))
                        torch._foreach_lerp_(avg, live, 1 - d)
                n_avg += 1
            if max_steps and s // B >= max_steps:
                break
        if not per_batch:
            sch.step()
        ev = ema_model if decay else model
        ev.eval()
        correct = torch.zeros(K, device=dev)
        with torch.no_grad():
            for s in range(0, len(val_y), 1000):
                xb = xv[s:s + 1000].expand(-1, K, -1, -1)
                pred = ev(xb).view(-1, K, 10).argmax(2)                # (m, K)
                correct += (pred == val_y[s:s + 1000, None]).sum(0)
        acc = (100.0 * correct / len(val_y)).tolist()
        accs.append(acc)
        log(f"  {cfg['name']} epoch {epoch} {time.time() - t0:.1f}s mean {np.mean(acc):.3f} min {min(acc):.2f}")
    return np.array(accs).T  # (K, epochs)


S = ("c",)
def c(cout, k=3, pad=0, drop=False):
    return ("c", cout, k, pad, drop)

M3 = [c(8), c(12), c(16), "P", c(8, 1, 0, True), c(12, drop=True), c(16, drop=True), c(14)]
M3P = [c(8, pad=1), c(12, pad=1), c(16, pad=1), "P", c(8, 1, 0, True), c(12, drop=True), c(16, drop=True), c(14)]
PEER = [c(10, pad=1), c(10, pad=1), c(10, pad=1), "P", c(16), c(16), c(8), c(8), c(8, 1), c(16, 1)]
TWO = [c(8, pad=1), c(10, pad=1), "P", c(12, pad=1, drop=True), c(14, pad=1, drop=True), "P",
       c(14, pad=1), c(16, pad=1)]
BASE = dict(arch=M3, dropout=0.05, lr=0.2, batch=128, deg=7.0, tr=0.1, ema=0.998)

CONFIGS = [
    dict(BASE, name="base"),
    dict(BASE, name="ls0.1", ls=0.1),
    dict(BASE, name="m3pad", arch=M3P),
    dict(BASE, name="peer_ours", arch=PEER, dropout=0.0),
    dict(BASE, name="clean6", clean=6),
    dict(BASE, name="bs64_lr0.1", batch=64, lr=0.1),
    dict(BASE, name="tr0.05", tr=0.05),
    dict(BASE, name="deg10", deg=10.0),
    dict(BASE, name="drop0", dropout=0.0),
    dict(BASE, name="peer_own", arch=PEER, dropout=0.0, opt="adam", lr=0.005, sched="step",
         step=8, gamma=0.1, batch=64, tr=0.0, ema=0.0, head_bias=False),
    dict(BASE, name="m3pad_ls0.1", arch=M3P, ls=0.1),
    dict(BASE, name="ls0.1_clean6", ls=0.1, clean=6),
    dict(BASE, name="lr0.3_ls0.1", lr=0.3, ls=0.1),
    dict(BASE, name="two_pool", arch=TWO),
    dict(BASE, name="scale0.1", scale=0.1),
    dict(BASE, name="pct0.2", pct=0.2),
    dict(BASE, name="adam_oc0.01", opt="adam", lr=0.01),
    dict(BASE, name="wd5e-5", wd=5e-5),
    dict(BASE, name="peer_tr0", arch=PEER, dropout=0.0, tr=0.0),
    dict(BASE, name="base_rep"),
    dict(BASE, name="ls0.1_rep", ls=0.1),
    dict(BASE, name="m3pad_rep", arch=M3P),
    dict(BASE, name="peer_ours_rep", arch=PEER, dropout=0.0),
]


def main():
    out, wid, nw, K, deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    smoke = os.environ.get("SMOKE")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    x, y = load_train(os.path.dirname(os.path.abspath(__file__)))
    tx, ty, vx, vy = x[:50000].to(dev), y[:50000].to(dev), x[50000:].to(dev), y[50000:].to(dev)
    epochs = 15
    if smoke:
        tx, ty, vx, vy, epochs = tx[:2000], ty[:2000], vx[:1000], vy[:1000], 2
    logf = open(f"{out}/log_{wid}.txt", "a")
    def log(m):
        print(m, flush=True); logf.write(m + "\n"); logf.flush()
    last = 0.0
    only = os.environ.get("ONLY", "").split(",")
    chosen = [(i, cfg) for i, cfg in enumerate(CONFIGS) if cfg["name"] in only]
    for j, (i, cfg) in enumerate(chosen):
        if j % nw != wid:
            continue
        if time.time() + 1.1 * last > deadline:
            log(f"deadline: skip {cfg['name']}"); continue
        t0 = time.time()
        accs = run(cfg, K, 7000 + 97 * i, dev, tx, ty, vx, vy, epochs=epochs, log=log)
        min5 = accs[:, -5:].min(1)
        last = time.time() - t0
        rec = dict(name=cfg["name"], K=K, params=params_per_model(cfg["arch"], head_bias=cfg.get("head_bias", True)),
                   seconds=time.time() - t0, min5=min5.round(3).tolist(),
                   last=accs[:, -1].round(3).tolist(), mean_min5=float(min5.mean()),
                   frac_9940=float((min5 >= 99.40 - 1e-9).mean()), worst=float(min5.min()),
                   epoch_mean=accs.mean(0).round(3).tolist())
        with open(f"{out}/results.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        log(f"DONE {cfg['name']} params {rec['params']} mean_min5 {rec['mean_min5']:.3f} "
            f"frac {rec['frac_9940']:.2f} worst {rec['worst']:.2f} {rec['seconds']:.0f}s")


if __name__ == "__main__":
    main()
