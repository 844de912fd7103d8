"""The Hypothesis search: generated networks, saturation on purpose, shrunk counterexamples.

For each dtype, :func:`search` runs :func:`gradverify.engine.check.check_problem` as a Hypothesis
property over :func:`gradverify.exploration.strategies.problems`:

* ``hypothesis.target()`` climbs toward the worst cases on the (clipped, finite) bits of
  error and on the saturation reached;
* each failure kind (``incorrect``, ``unstable``, ``error``) raises its own exception type,
  so Hypothesis keeps them apart and shrinks each separately: an ``incorrect`` failure never
  shrinks into an ``error`` one;
* the shrunk counterexample is checked again with finite differences as a second opinion,
  and turned into a copy-paste reproduction snippet;
* for an ``unstable`` failure the saturation threshold is located by bisection along the
  counterexample scaled toward the interior, and compared with every example tried;
* for ``incorrect`` and ``error`` failures, targeted variants of the counterexample
  (batch 1, shallower, width-1 layers widened, other activations, symmetric square weights)
  say which conditions are necessary (:func:`gradverify.engine.conditions.condition_hints`).

A call that exceeds the per-call time limit ends that dtype's search at once with an
``error`` verdict (no shrinking, so a hanging implementation cannot stall the search). So
does a protocol error (a ``malformed`` call: a signature that does not take the protocol's
arguments; the wrong type, count, shape or dtype returned; inputs written into; different
answers to the same input) while no call of that dtype has yet returned gradients of the
protocol's form: an implementation that never follows the protocol gets its ``error``
after a call or two, not after a whole search and shrink.

An ``error`` at one depth is followed by one call at each other allowed depth; when one of
them returns gradients, the message says so and how to declare the depth
(``@gradverify.supports(depth=2)``). A declared architecture (depth, widths, batch) is
never left: the strategies draw inside it, and the structural minimiser, the bisection and
the diagnostic variants skip whatever falls outside it.

Reproducibility: the seed (chosen at random and reported when not given) fixes the
examples Hypothesis generates, and so every number in the result apart from timings, given
the same versions of gradverify, Hypothesis and numpy, whatever else the program has loaded:
Hypothesis would mix in literal constants from the local (not installed) modules loaded so
far, and the search switches that off while it draws
(:func:`gradverify.exploration.hypothesis_compat.without_local_constants`). A seed
given by the caller switches Hypothesis's default example database off (saved failures would
otherwise replay first and change the examples from one run to the next); a database passed
explicitly is still used. The reproduction snippet rebuilds the counterexample itself,
exactly, anywhere.

The parts: :mod:`.results` (what a search returns), :mod:`.database` (seed, derandomization,
example database), :mod:`.rounds` (the Hypothesis run of one dtype), :mod:`.minimize`,
:mod:`.summary` and :mod:`.architecture` (the work after it), :mod:`.runner` (:func:`search`).
"""

from __future__ import annotations

from gradverify.exploration.search.database import DEFAULT_DATABASE
from gradverify.exploration.search.results import (
    DEFAULT_MAX_EXAMPLES,
    NOTABLE_LOSS_BITS,
    SEARCH_SCHEMA,
    BeyondStable,
    DtypeSummary,
    SearchResult,
)
from gradverify.exploration.search.runner import search

# ``search`` is looked up here at call time by the CLI, the report writer and
# gradverify.exploration.checking, so a test that patches ``gradverify.exploration.search.search``
# cuts their runs short. No submodule may be named ``search``: importing it would replace
# this attribute with the module.

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_MAX_EXAMPLES",
    "NOTABLE_LOSS_BITS",
    "SEARCH_SCHEMA",
    "BeyondStable",
    "DtypeSummary",
    "SearchResult",
    "search",
]
