"""theta's sinusoid workload in JAX: jit + vmap over tasks + lax.scan over
100 meta-steps per call; one thread. Prints one JSON line per algorithm.

    python3 benches/peers/jax_bench.py [--seconds 3] [--only maml_1_step,...]
"""

import common

common.one_thread()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

CHUNK = 100


def init(key):
    params = []
    for fan_in, fan_out in zip(common.SIZES[:-1], common.SIZES[1:]):
        key, kw, kb = jax.random.split(key, 3)
        bound = 1.0 / jnp.sqrt(fan_in)
        params.append((jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
                       jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound)))
    return params


def forward(params, x):
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x


def sample(key):
    """25 tasks: amplitude U[0.1, 5], phase U[0, pi], x U[-5, 5]."""
    ka, kp, kx = jax.random.split(key, 3)
    amp = jax.random.uniform(ka, (common.META_BATCH, 1, 1), minval=0.1, maxval=5.0)
    phase = jax.random.uniform(kp, (common.META_BATCH, 1, 1), maxval=jnp.pi)
    x = jax.random.uniform(kx, (common.META_BATCH, 2 * common.K, 1), minval=-5.0, maxval=5.0)
    y = amp * jnp.sin(x - phase)
    return (x[:, :common.K], y[:, :common.K]), (x[:, common.K:], y[:, common.K:])


def make(algorithm, unravel):
    def loss(flat, x, y):
        return jnp.mean((forward(unravel(flat), x) - y) ** 2)

    grad = jax.grad(loss)

    def sgd(flat, x, y, steps, first_order=False):
        for _ in range(steps):
            g = grad(flat, x, y)
            flat = flat - common.ALPHA * (lax.stop_gradient(g) if first_order else g)
        return flat

    def gnvp(flat, x, v):
        """G v = J^T (2/n) J v for the MSE support loss."""
        f = lambda p: forward(unravel(p), x)  # noqa: E731
        _, jv = jax.jvp(f, (flat,), (v,))
        _, vjp = jax.vjp(f, flat)
        return vjp(2.0 * jv / x.shape[0])[0]

    def cg(matvec, b, iterations):
        def body(_, s):
            x, r, p, rr = s
            ap = matvec(p)
            a = rr / jnp.vdot(p, ap)
            x, r = x + a * p, r - a * ap
            rr_new = jnp.vdot(r, r)
            return x, r, r + (rr_new / rr) * p, rr_new
        x = jnp.zeros_like(b)
        return lax.fori_loop(0, iterations, body, (x, b, b, jnp.vdot(b, b)))[0]

    def task_grad(flat, support, query):
        (xs, ys), (xq, yq) = support, query
        if algorithm.startswith("maml"):
            m = 1 if algorithm == "maml_1_step" else 5
            return jax.grad(lambda p: loss(sgd(p, xs, ys, m), xq, yq))(flat)
        if algorithm == "fomaml_1_step":
            return grad(sgd(flat, xs, ys, 1, first_order=True), xq, yq)
        if algorithm == "reptile_5_steps":
            return flat - sgd(flat, xs, ys, 5)
        lam = common.LAMBDA
        phi = flat
        if algorithm == "imaml_5_gradient_steps_5_cg":
            for _ in range(5):
                phi = phi - common.ALPHA * (grad(phi, xs, ys) + lam * (phi - flat))
        else:
            for _ in range(3):
                rhs = -(grad(phi, xs, ys) + lam * (phi - flat))
                phi = phi + cg(lambda v: gnvp(phi, xs, v) + lam * v, rhs, 5)
        gq = grad(phi, xq, yq)
        return cg(lambda v: v + gnvp(phi, xs, v) / lam, gq, 5)

    def meta_grad(flat, key):
        support, query = sample(key)
        if algorithm == "pretrained":
            x = jnp.concatenate([support[0], query[0]], axis=1).reshape(-1, 1)
            y = jnp.concatenate([support[1], query[1]], axis=1).reshape(-1, 1)
            return grad(flat, x, y)
        return jnp.mean(jax.vmap(task_grad, in_axes=(None, 0, 0))(flat, support, query), axis=0)

    def step(carry, _):
        flat, m, v, t, key = carry
        key, sub = jax.random.split(key)
        g = meta_grad(flat, sub)
        t = t + 1
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mhat, vhat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
        flat = flat - common.BETA * mhat / (jnp.sqrt(vhat) + 1e-8)
        return (flat, m, v, t, key), None

    @jax.jit
    def chunk(carry):
        return lax.scan(step, carry, None, length=CHUNK)[0]

    return chunk


def main():
    args = common.parse_args()
    flat, unravel = ravel_pytree(init(jax.random.PRNGKey(0)))
    for algorithm in args.algorithms:
        chunk = make(algorithm, unravel)
        state = [(flat, jnp.zeros_like(flat), jnp.zeros_like(flat), 0.0, jax.random.PRNGKey(1))]

        def run():
            state[0] = chunk(state[0])
            jax.block_until_ready(state[0][0])

        common.report("jax", "jit+vmap+scan", algorithm, common.measure(run, CHUNK, args.seconds))


if __name__ == "__main__":
    main()
