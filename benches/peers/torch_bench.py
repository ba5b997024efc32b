"""theta's sinusoid workload in PyTorch, one thread, two styles:

* "loop": a Python loop over the tasks with per-task autograd
  (create_graph for MAML), the style of learn2learn and higher;
* "torch.func": vmap over the tasks of functional grad / jvp / vjp.

Prints one JSON line per algorithm and style.

    python3 benches/peers/torch_bench.py [--seconds 3] [--only maml_1_step,...]
"""

import math

import common

common.one_thread()

import torch  # noqa: E402
from torch.func import functional_call, grad, jvp, vjp, vmap  # noqa: E402

torch.set_num_threads(1)
CHUNK = 10


def init():
    gen = torch.Generator().manual_seed(0)
    params = []
    for fan_in, fan_out in zip(common.SIZES[:-1], common.SIZES[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        params.append((torch.rand(fan_in, fan_out, generator=gen) * 2 * bound - bound))
        params.append((torch.rand(fan_out, generator=gen) * 2 * bound - bound))
    return params


def forward(params, x):
    n = len(params) // 2
    for i in range(n):
        x = x @ params[2 * i] + params[2 * i + 1]
        if i < n - 1:
            x = torch.relu(x)
    return x


def loss(params, x, y):
    return ((forward(params, x) - y) ** 2).mean()


def sample():
    b = common.META_BATCH
    amp = torch.rand(b, 1, 1) * 4.9 + 0.1
    phase = torch.rand(b, 1, 1) * math.pi
    x = torch.rand(b, 2 * common.K, 1) * 10 - 5
    y = amp * torch.sin(x - phase)
    return (x[:, :common.K], y[:, :common.K]), (x[:, common.K:], y[:, common.K:])


def sub(a, s, b):
    return [x - s * y for x, y in zip(a, b)]


def gnvp(params, x, v):
    """G v = J^T (2/n) J v for the MSE support loss."""
    f = lambda *p: forward(list(p), x)  # noqa: E731
    _, jv = jvp(f, tuple(params), tuple(v))
    _, back = vjp(f, *params)
    return list(back(2.0 * jv / x.shape[0]))


def dot(a, b):
    return sum((x * y).sum() for x, y in zip(a, b))


def cg(matvec, b, iterations):
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in b]
    rr = dot(r, r)
    for _ in range(iterations):
        ap = matvec(p)
        a = rr / dot(p, ap)
        x = [xi + a * pi for xi, pi in zip(x, p)]
        r = [ri - a * ai for ri, ai in zip(r, ap)]
        rr_new = dot(r, r)
        p = [ri + (rr_new / rr) * pi for ri, pi in zip(r, p)]
        rr = rr_new
    return x


def task_grad_functional(algorithm, params, xs, ys, xq, yq):
    """One task's outer gradient with torch.func (vmap-able)."""
    g = grad(loss)
    if algorithm.startswith("maml"):
        m = 1 if algorithm == "maml_1_step" else 5

        def meta_loss(p):
            phi = p
            for _ in range(m):
                phi = sub(phi, common.ALPHA, g(phi, xs, ys))
            return loss(phi, xq, yq)

        return grad(meta_loss)(params)
    if algorithm == "fomaml_1_step":
        phi = sub(params, common.ALPHA, [t.detach() for t in g(params, xs, ys)])
        return g(phi, xq, yq)
    if algorithm == "reptile_5_steps":
        phi = params
        for _ in range(5):
            phi = sub(phi, common.ALPHA, g(phi, xs, ys))
        return [a - b for a, b in zip(params, phi)]
    lam = common.LAMBDA
    phi = params
    for _ in range(5):
        gs = g(phi, xs, ys)
        phi = [f - common.ALPHA * (gi + lam * (f - t)) for f, gi, t in zip(phi, gs, params)]
    gq = g(phi, xq, yq)
    return cg(lambda v: [vi + gi / lam for vi, gi in zip(v, gnvp(phi, xs, v))], gq, 5)


def task_grad_loop(algorithm, params, xs, ys, xq, yq):
    """One task's outer gradient with plain autograd."""
    if algorithm.startswith("maml") or algorithm == "fomaml_1_step":
        m = 5 if algorithm == "maml_5_steps" else 1
        second = algorithm != "fomaml_1_step"
        phi = params
        for _ in range(m):
            gs = torch.autograd.grad(loss(phi, xs, ys), phi, create_graph=second)
            phi = sub(phi, common.ALPHA, gs)
        if not second:
            phi = [t.detach().requires_grad_() for t in phi]
            return torch.autograd.grad(loss(phi, xq, yq), phi)
        return torch.autograd.grad(loss(phi, xq, yq), params)
    if algorithm == "reptile_5_steps":
        phi = [t.detach().requires_grad_() for t in params]
        for _ in range(5):
            gs = torch.autograd.grad(loss(phi, xs, ys), phi)
            phi = [(f - common.ALPHA * gi).detach().requires_grad_() for f, gi in zip(phi, gs)]
        return [a.detach() - b.detach() for a, b in zip(params, phi)]
    lam = common.LAMBDA
    phi = [t.detach().requires_grad_() for t in params]
    for _ in range(5):
        gs = torch.autograd.grad(loss(phi, xs, ys), phi)
        phi = [(f - common.ALPHA * (gi + lam * (f - t))).detach().requires_grad_()
               for f, gi, t in zip(phi, gs, params)]
    gq = torch.autograd.grad(loss(phi, xq, yq), phi)
    with torch.no_grad():
        return cg(lambda v: [vi + gi / lam for vi, gi in zip(v, gnvp(phi, xs, v))], gq, 5)


class Adam:
    def __init__(self, params):
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        with torch.no_grad():
            for p, g, m, v in zip(params, grads, self.m, self.v):
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                mhat = m / (1 - 0.9 ** self.t)
                vhat = v / (1 - 0.999 ** self.t)
                p.sub_(common.BETA * mhat / (vhat.sqrt() + 1e-8))


def meta_step(style, algorithm, params, adam):
    (xs, ys), (xq, yq) = sample()
    if algorithm == "pretrained":
        x = torch.cat([xs, xq], 1).reshape(-1, 1)
        y = torch.cat([ys, yq], 1).reshape(-1, 1)
        grads = grad(loss)(params, x, y)
    elif style == "torch.func":
        per_task = vmap(lambda a, b, c, d: task_grad_functional(algorithm, params, a, b, c, d))(
            xs, ys, xq, yq)
        grads = [t.mean(0) for t in per_task]
    else:
        grads = None
        for i in range(common.META_BATCH):
            g = task_grad_loop(algorithm, params, xs[i], ys[i], xq[i], yq[i])
            grads = [t.detach().clone() for t in g] if grads is None else \
                [a + b.detach() for a, b in zip(grads, g)]
        grads = [t / common.META_BATCH for t in grads]
    adam.step(params, grads)


def main():
    args = common.parse_args()
    torch.manual_seed(1)
    for style in ("loop", "torch.func"):
        for algorithm in args.algorithms:
            if algorithm == "imaml_3_proximal_gauss_newton_5_cg":
                continue  # not measured in PyTorch (issue 5's table)
            if algorithm == "pretrained" and style == "loop":
                continue  # one batched pass: the same in both styles
            params = [p.clone().requires_grad_() for p in init()]
            adam = Adam(params)

            def run():
                for _ in range(CHUNK):
                    meta_step(style, algorithm, params, adam)

            common.report("pytorch", style, algorithm, common.measure(run, CHUNK, args.seconds))


if __name__ == "__main__":
    main()
