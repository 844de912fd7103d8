"""Sigmoid + binary cross-entropy at saturation: three ways to write the output layer.

The question behind gradverify: backpropagating BCE through a sigmoid output divides by
``yhat (1 - yhat)``, which becomes 0 in floating point once the network is confident. A
small constant in the denominator "solves" it in practice. Is there a closed form that
needs no constant, and how does the gradient reach the earlier layers?

This script checks the three ways against the exact (mpmath) gradient, finds where each
dtype breaks them, and draws the error-vs-saturation plot.

    python examples/bce_saturation.py [OUT]     # OUT: a .png path or a directory
    python examples/bce_saturation.py --quick   # fewer examples (used by the tests)
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from gradverify.engine.implementations import BUILTIN_IMPLEMENTATIONS
from gradverify.exploration.scan import scan
from gradverify.exploration.search import search
from gradverify.model.dtypes import available_dtypes, significand_bits
from gradverify.report.figures import error_vs_saturation_figure, figure_png
from gradverify.report.scan_data import PLOTTED_CRITERIA, scan_sweeps, scan_thresholds

WAYS = {
    "naive": "dJ/dyhat = (yhat - y) / (yhat (1 - yhat)), then times dyhat/dh = yhat (1 - yhat)",
    "epsilon": "the same with a constant 1e-7 added to the denominator (the mentor's fix)",
    "fused": "dJ/dh = yhat - y directly (sigmoid and BCE differentiated together)",
}


def say(text: str = "") -> None:
    """Print a dedented block (leading and trailing blank lines kept as one blank line)."""
    body = textwrap.dedent(text)
    if body.startswith("\n\n"):
        print()
    print(body.strip("\n"))


def explain_the_algebra() -> None:
    say("""
        1. The recursion: how the gradient reaches earlier layers
        ---------------------------------------------------------
        With h_i = W_i z_{i-1} + b_i, z_i = sigmoid(h_i) and delta_i = dJ/dh_i:

            delta_L     = dJ/dh_L                       (the output layer, below)
            delta_{i-1} = (W_i^T delta_i) (.) sigmoid'(h_{i-1})
            dJ/dW_i     = delta_i z_{i-1}^T,   dJ/db_i = delta_i summed over the batch

        dJ/dW_{L-1} is not computed from dJ/dW_L: both come from the deltas, and delta_{L-1}
        comes from delta_L through W_L^T. Only delta_L depends on the loss, so the whole
        question is how to compute delta_L.

        2. Three ways to compute delta_L for BCE on a sigmoid output (yhat = sigmoid(h))
        -------------------------------------------------------------------------------
    """)
    for name, text in WAYS.items():
        print(f"    {name:<8} {text}")
    say("""

        Why the fused form needs no constant in the denominator:

            dJ/dh = dJ/dyhat * dyhat/dh
                  = (yhat - y) / (yhat (1 - yhat))  *  yhat (1 - yhat)
                  = yhat - y

        The factor yhat (1 - yhat) is sigmoid'(h): it appears once in the denominator of
        dJ/dyhat and once as the derivative of the sigmoid, and the two cancel exactly, in
        the algebra, before any number is computed. So nothing is divided: yhat - y lies
        in [-1, 1] for every h, and there is no 0/0 to guard against.

        In floating point the naive chain computes the factor first. Once |h| is a little
        above p ln 2 (p = significand bits), yhat rounds to exactly 1.0 (or, for very
        negative h, exp(-h) overflows and yhat becomes 0), so yhat (1 - yhat) = 0 and the
        chain gives 0/0 = NaN. The constant removes the NaN but not the problem: it biases
        the gradient wherever yhat (1 - yhat) is comparable to it, and once the factor is 0
        it returns about 0 instead of about +-1: a confidently wrong prediction gets no
        gradient at all.
    """)


def verdicts(dtypes: tuple[str, ...], max_examples: int) -> None:
    say(f"""

        3. Verdicts: a property-based search against the exact gradient
        ---------------------------------------------------------------
        Random sigmoid networks (depth, widths, weights pushed toward saturation), checked
        against an exact mpmath reference; {max_examples} examples per dtype, seed 0.
    """)
    for name, impl in BUILTIN_IMPLEMENTATIONS.items():
        result = search(
            impl, dtypes=dtypes, max_examples=max_examples, seed=0, database=None, name=name
        )
        per = ", ".join(f"{d} {s.verdict.value}" for d, s in result.per_dtype.items())
        print(f"    {name:<8} {result.verdict.value.upper():<10} ({per})")
    say("""

        unstable: right in the interior, inf/NaN or wrong at saturation. incorrect: wrong
        even at ordinary values (the constant's bias is larger than float64's rounding).
    """)


def thresholds(dtypes: tuple[str, ...], scan_options: dict) -> list[dict]:
    say("""

        4. Where each dtype breaks: the first float logit h with inf/NaN or 100% error
        ----------------------------------------------------------------------------
        A one-layer network whose logit is exactly h, walked over the float lattice of each
        dtype (label y = 0, h > 0: the network is confidently wrong).
    """)
    scans = [
        scan(impl, dtypes=dtypes, name=name, **scan_options).to_dict()
        for name, impl in BUILTIN_IMPLEMENTATIONS.items()
    ]
    rows = [t for s in scans for t in scan_thresholds(s)]
    print(f"    {'':<8} {'dtype':<9} {'p ln 2':>7}  {'first inf/NaN':<34} first 100% error")
    for name in BUILTIN_IMPLEMENTATIONS:
        for dtype in dtypes:
            cells = []
            for criterion in ("nonfinite", "error_1"):
                t = next(
                    t
                    for t in rows
                    if t["implementation"] == name
                    and t["dtype"] == dtype
                    and t["label"] == 0.0
                    and t["side"] == "positive"
                    and t["criterion"] == criterion
                )
                cells.append(
                    f"h = {float(t['value']):.6g} ({t['bits']})"
                    if t["found"]
                    else ("finite throughout" if criterion == "nonfinite" else "never")
                )
            predicted = significand_bits(dtype) * math.log(2)
            print(f"    {name:<8} {dtype:<9} {predicted:7.3f}  {cells[0]:<34} {cells[1]}")
    say("""

        The naive form breaks where 1 - yhat first rounds to 0, near p ln 2: the thresholds
        differ by dtype exactly as the significand widths do. The constant stays finite but
        reaches 100% error at the same place (it returns about 0 instead of about 1); in
        float16, 1e-7 is below the smallest normal number, (yhat - y) / 1e-7 overflows and
        the constant gives NaN as well. The fused form stays finite and correct throughout.
    """)
    return scans


def plot(scans: list[dict], out: Path) -> Path:
    series = [s for result in scans for s in scan_sweeps(result)]
    marks = [
        dict(t, kind=PLOTTED_CRITERIA[t["criterion"]])
        for result in scans
        for t in scan_thresholds(result)
        if t["plot"]
    ]
    path = out / "bce_error_vs_saturation.png" if out.suffix != ".png" else out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_png(error_vs_saturation_figure(series, marks)))
    say(f"""

        5. The picture
        --------------
        Error (bits, against the exact gradient) as the output logit h sweeps each dtype,
        one line per way of writing the output layer: {path}
    """)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out",
        nargs="?",
        help="where to save the plot: a .png path or a "
        "directory (default: a new temporary directory)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer examples and floats")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gradverify-bce-"))
    wanted = ("float16", "float32") if args.quick else ("float16", "bfloat16", "float32", "float64")
    dtypes = tuple(d for d in wanted if d in available_dtypes())
    scan_options = {"hidden_activations": ()}
    if args.quick:
        scan_options.update(sweep_points=60, check_points=16, neighbourhood=2)
    np.seterr(all="ignore")
    explain_the_algebra()
    verdicts(dtypes, max_examples=8 if args.quick else 30)
    scans = thresholds(dtypes, scan_options)
    plot(scans, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
