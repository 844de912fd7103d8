"""What README.md's adapter examples leave to the reader: a jax loss, a textbook ``Network``
and a plain function with its gradient, imported by an invisible block before them."""

import numpy as np


def loss_fn(params, x, y, *, activations, loss):
    """Binary cross-entropy on the output logits, the stable ``log_sigmoid`` form (jax)."""
    import jax
    import jax.numpy as jnp

    functions = {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "softplus": jax.nn.softplus,
        "identity": lambda h: h,
    }
    h = x
    for i, (W, b) in enumerate(params):
        h = W @ h + b[:, None]
        if i < len(params) - 1:
            h = functions[activations[i]](h)
    return jnp.mean(-(y * jax.nn.log_sigmoid(h) + (1 - y) * jax.nn.log_sigmoid(-h)))


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class Network:
    """Nielsen's chapter 2 network, with the cross-entropy cost's output delta ``a - y``."""

    def __init__(self, sizes):
        self.num_layers = len(sizes)
        self.biases = [np.zeros((n, 1)) for n in sizes[1:]]
        self.weights = [np.zeros((n, m)) for m, n in zip(sizes[:-1], sizes[1:], strict=True)]

    def backprop(self, x, y):
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights, strict=True):
            zs.append(w @ activation + b)
            activation = sigmoid(zs[-1])
            activations.append(activation)
        delta = activations[-1] - y
        nabla_b, nabla_w = [delta], [delta @ activations[-2].T]
        for l in range(2, self.num_layers):
            s = sigmoid(zs[-l])
            delta = (self.weights[-l + 1].T @ delta) * s * (1 - s)
            nabla_b.insert(0, delta)
            nabla_w.insert(0, delta @ activations[-l - 1].T)
        return nabla_b, nabla_w


def fun(theta):
    """The extended Rosenbrock function; ``grad`` is its gradient, ``mp_fun`` its mpmath form."""
    return float(np.sum(100 * (theta[1:] - theta[:-1] ** 2) ** 2 + (1 - theta[:-1]) ** 2))


def grad(theta):
    g = np.zeros_like(theta)
    g[:-1] = -400 * theta[:-1] * (theta[1:] - theta[:-1] ** 2) - 2 * (1 - theta[:-1])
    g[1:] += 200 * (theta[1:] - theta[:-1] ** 2)
    return g


def mp_fun(ctx, theta):
    return ctx.fsum(
        100 * (theta[i + 1] - theta[i] ** 2) ** 2 + (1 - theta[i]) ** 2
        for i in range(len(theta) - 1)
    )


theta = np.array([0.3, -1.2, 0.7, 1.5])
