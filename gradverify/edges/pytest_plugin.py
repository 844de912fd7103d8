"""pytest plugin for gradverify (registered through the ``pytest11`` entry point).

Usage::

    def test_my_backprop(gradverify):
        gradverify.check(my_backprop, activations=("sigmoid",), losses=("bce",))

    @pytest.mark.gradverify(dtypes=("float32",), max_examples=50)
    def test_quick(gradverify):
        gradverify.check(my_backprop)

    def test_my_activation(gradverify):        # registered: by name, object or MODULE:ATTR
        square_plus = gradverify_module.register_activation("square_plus", fwd, mp_fwd)
        gradverify.check(my_backprop, activations=(square_plus, "tanh"))

``gradverify.check`` runs the Hypothesis search (or judges one ``problem=``) with the
session's options (``--gradverify-dtypes``, ``--gradverify-max-examples``,
``--gradverify-seed``, ..., their ini keys and ``[tool.gradverify]``; see
:mod:`gradverify.edges.options`) and fails the test with the diagnosis, the worst elements and
the reproduction snippet. The terminal summary has one line per check, and
``--gradverify-report DIR`` writes the report for all of them. Under pytest-xdist the
workers send their checks to the controller.

Loading the plugin imports only the standard library and pytest; numpy, mpmath and
Hypothesis are imported on the first check. ``-p no:gradverify`` disables it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gradverify.common.formatting import as_float, format_bits, format_logit
from gradverify.edges.options import (
    OPTIONS,
    Settings,
    add_pytest_options,
    counts_as_failure,
    resolve_function_names,
    resolve_settings,
    search_arguments,
    validate_names,
    values_from_pytest,
)

__all__ = ["GradverifyFixture"]

REPORT_ATTRIBUTE = "gradverify_checks"
"""The attribute of a test report that carries its checks (JSON) from an xdist worker."""
MARKER_OPTIONS = {o.dest: o for o in OPTIONS if o.pytest_flag and o.dest != "report_dir"}


@dataclass
class _SessionState:
    """Settings of the session and every check made in it (on this process)."""

    settings: Settings
    checks: list[dict] = field(default_factory=list)
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (nodeid, what xdist says)
    report_path: Path | None = None
    report_error: str | None = None


_STATE = pytest.StashKey[_SessionState]()
_PENDING = pytest.StashKey[list]()  # checks made in a test on an xdist worker, not yet sent


def _debugging(config: pytest.Config) -> bool:
    """Whether the session debugs: --pdb, --trace, or a debugger's trace function (not
    coverage's) is set. Then the fixture runs implementations in this process by default,
    so that breakpoints in them work."""
    if config.getoption("usepdb", False) or config.getoption("trace", False):
        return True
    tracer = sys.gettrace()
    owner = getattr(tracer, "__self__", tracer)
    if tracer is not None and not type(owner).__module__.startswith("coverage"):
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+ debuggers
    return monitoring is not None and monitoring.get_tool(monitoring.DEBUGGER_ID) is not None


def _pyproject(config: pytest.Config) -> Path | None:
    inipath = getattr(config, "inipath", None)
    if inipath is not None and Path(inipath).name == "pyproject.toml":
        return Path(inipath)
    candidate = Path(config.rootpath) / "pyproject.toml"
    return candidate if candidate.is_file() else None


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gradverify(**options): options of gradverify checks in this test, e.g. "
        "dtypes=('float32',), max_examples=50, seed=1, tolerance_factor=32, "
        "fail_on='incorrect'",
    )
    from gradverify.edges.config import ConfigError, load_config

    try:
        given = values_from_pytest(config, ini=False)
        ini = values_from_pytest(config, ini=True)
        for layer in (given, ini):
            if layer.get("dtypes"):
                validate_names("dtypes", layer["dtypes"])
        path = _pyproject(config)
        file_values = load_config(path, required=False).values if path else {}
    except (ValueError, ConfigError) as exc:
        raise pytest.UsageError(f"gradverify: {exc}") from None
    settings = resolve_settings(given, ini, file_values)
    if settings.report_dir and not _is_worker(config):
        # checked before any test runs, and resolved against the invocation directory so
        # that a test changing directory cannot move the report
        from gradverify.report.atomic import OutputPathError, check_output_directory

        where = (
            "--gradverify-report"
            if given.get("report_dir")
            else "gradverify_report"
            if ini.get("report_dir")
            else f"report-dir ({path})"
        )
        try:
            settings.report_dir = str(
                check_output_directory(
                    settings.report_dir, what=where, base=config.invocation_params.dir
                )
            )
        except OutputPathError as exc:
            raise pytest.UsageError(f"gradverify: {exc}") from None
    config.stash[_STATE] = _SessionState(settings)
    if not _is_worker(config):
        config.pluginmanager.register(
            _ReportCollector(config.stash[_STATE]), "gradverify-report-collector"
        )


def _state(config: pytest.Config) -> _SessionState:
    return config.stash[_STATE]


def _marker_value(name: str, value: Any) -> Any:
    option = MARKER_OPTIONS.get(name)
    if option is None:
        known = ", ".join(MARKER_OPTIONS)
        raise ValueError(f"unknown argument {name!r} of the gradverify marker; known: {known}")
    try:
        if isinstance(value, str) and option.kind != "choice":
            return option.parse(value)
        if option.kind == "names":
            value = (value,) if isinstance(value, str) else tuple(value)
            validate_names(name, value)
        return option.check(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gradverify marker argument {name}={value!r}: {exc}") from None


def _check_record(nodeid: str, result: Any, settings: Settings, failed: bool) -> dict:
    """The summary of one check as plain data (it may travel from an xdist worker)."""
    per_dtype = getattr(result, "per_dtype", None)
    if per_dtype:
        dtypes = {
            name: {
                "verdict": str(s.verdict),
                "worst_bits": as_float(s.worst_bits),
                "threshold_saturation": as_float(s.threshold_saturation),
                "beyond_stable_bits": as_float(s.beyond_stable.bits)
                if s.beyond_stable is not None
                else None,
            }
            for name, s in per_dtype.items()
        }
    else:  # a CheckResult: one problem, one dtype
        dtypes = {
            result.dtype: {
                "verdict": str(result.verdict),
                "worst_bits": as_float(result.worst_bits),
                "threshold_saturation": None,
                "beyond_stable_bits": as_float(result.precision_beyond_stable()[0])
                if result.tensors
                else None,
            }
        }
    return {
        "nodeid": nodeid,
        "implementation": result.implementation,
        "verdict": str(result.verdict),
        "failed": failed,
        "worst_bits": as_float(result.worst_bits),
        "examples": getattr(result, "examples", 1),
        "tolerance_factor": settings.tolerance_factor,
        "policy": settings.policy,
        "dtypes": dtypes,
        "result": result.to_dict(),
    }


class GradverifyFixture:
    """What the ``gradverify`` fixture gives a test: ``check`` and the resolved ``settings``."""

    def __init__(
        self,
        state: _SessionState,
        nodeid: str,
        overrides: dict[str, Any],
        *,
        request: pytest.FixtureRequest | None = None,
    ) -> None:
        self._state = state
        self._request = request
        self.nodeid = nodeid
        self.settings = resolve_settings(overrides, state.settings.as_dict())
        self.results: list[Any] = []

    @property
    def isolate(self) -> bool:
        """Whether checks run the implementation in a worker process: the option if given
        (``--gradverify-[no-]isolate``, ini, ``[tool.gradverify]``, the marker), else yes
        unless the session debugs (``--pdb``, ``--trace``, an attached debugger)."""
        if self.settings.isolate is not None:
            return bool(self.settings.isolate)
        return self._request is None or not _debugging(self._request.config)

    def _record(self, record: dict) -> None:
        node = self._request.node if self._request is not None else None
        if node is not None and _is_worker(node.config):  # sent with the test's report
            node.stash.setdefault(_PENDING, []).append(record)
        else:
            self._state.checks.append(record)

    def check(
        self,
        impl: Callable,
        problem: Any = None,
        *,
        activations: Any = None,
        losses: Any = None,
        dtypes: Any = None,
        depth: Any = None,
        widths: Any = None,
        batch: Any = None,
        fail_on: str | None = None,
        **options: Any,
    ) -> Any:
        """Check ``impl`` and fail the test unless it passes (under the fail-on policy).

        Without ``problem`` this runs the Hypothesis search over the given activations,
        losses (names, ``MODULE:ATTR`` of a registered one, or the object
        :func:`gradverify.register_activation` / ``register_loss`` returned) and dtypes
        (default: what ``impl`` declares, then the session's dtypes) and inside the given
        architecture: ``depth`` (an int or ``(min, max)``), ``widths``
        (input first, None for a free one) and ``batch``, as in :func:`gradverify.supports`.
        With a ``Problem`` it judges that one problem. Other keyword arguments go to
        :func:`gradverify.check`. Returns the SearchResult or CheckResult.
        """
        from gradverify.exploration.checking import check

        settings = self.settings
        if problem is None:
            kwargs = search_arguments(settings)
            for name, value in (
                ("activations", _function_names("activations", activations)),
                ("losses", _function_names("losses", losses)),
                ("dtypes", dtypes),
            ):
                if value is not None:
                    kwargs[name] = (value,) if isinstance(value, str) else tuple(value)
            for name, value in (("depth", depth), ("widths", widths), ("batch", batch)):
                if value is not None:
                    kwargs[name] = value
            kwargs["isolate"] = self.isolate
            kwargs.update(options)
        else:
            kwargs = {
                "tolerance_factor": settings.tolerance_factor,
                "policy": settings.policy,
                "isolate": self.isolate,
                **({"timeout": settings.timeout} if settings.timeout else {}),
                **options,
            }
        from gradverify.engine.isolation import IsolationError
        from gradverify.exact.precision import ExactReferenceError

        try:
            result = check(impl, problem, **kwargs)
        except IsolationError as exc:
            pytest.fail(str(exc), pytrace=False)
        except ExactReferenceError as exc:
            pytest.fail(f"gradverify: no exact reference for this problem: {exc}", pytrace=False)
        policy = fail_on or settings.fail_on
        failed = counts_as_failure(result.verdict, policy)
        self.results.append(result)
        self._record(_check_record(self.nodeid, result, settings, failed))
        if failed:
            pytest.fail(str(result), pytrace=False)
        return result


def _function_names(dest: str, values: Any) -> Any:
    """Registered activations or losses given as objects or ``MODULE:ATTR``, as names."""
    try:
        return resolve_function_names(dest, values, directory=None)
    except ValueError as exc:
        pytest.fail(f"gradverify: {dest}: {exc}", pytrace=False)


@pytest.fixture
def gradverify(request: pytest.FixtureRequest) -> GradverifyFixture:
    """Check backprop implementations against exact gradients: ``gradverify.check(impl)``."""
    overrides: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("gradverify"))):
        if marker.args:
            raise pytest.UsageError(
                "the gradverify marker takes keyword arguments only, e.g. "
                "@pytest.mark.gradverify(dtypes=('float32',))"
            )
        for name, value in marker.kwargs.items():
            try:
                overrides[name] = _marker_value(name, value)
            except ValueError as exc:
                pytest.fail(str(exc), pytrace=False)
    return GradverifyFixture(
        _state(request.config), request.node.nodeid, overrides, request=request
    )


# ---------------------------------------------------------------------------
# Collecting checks across xdist workers, the report and the terminal summary
# ---------------------------------------------------------------------------


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """On an xdist worker: each test report carries the checks made since the last one, so
    that the checks of finished tests reach the controller even if the worker crashes."""
    outcome = yield
    pending = item.stash.get(_PENDING, None)
    if pending and _is_worker(item.config):
        setattr(outcome.get_result(), REPORT_ATTRIBUTE, json.dumps(pending))
        item.stash[_PENDING] = []


class _ReportCollector:
    """Registered on the xdist controller (and in a plain session, where it finds nothing):
    takes the checks each test report carries, and notes crashed workers."""

    def __init__(self, state: _SessionState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, REPORT_ATTRIBUTE, None)
        if data:
            self.state.checks.extend(json.loads(data))
        if report.when == "???" and report.failed:  # xdist's report of a crashed worker
            self.state.crashes.append((report.nodeid, str(report.longrepr)))


def _write_report(state: _SessionState) -> None:
    from gradverify.report import write_report_from_results

    results = [c["result"] for c in state.checks]
    state.report_path = Path(write_report_from_results(state.settings.report_dir, results))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    if _is_worker(config):
        return
    state.checks.sort(key=lambda c: c["nodeid"])
    if state.settings.report_dir and state.checks:
        try:
            _write_report(state)
        except Exception as exc:  # noqa: BLE001 - reported in the summary, not a crash
            state.report_error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:  # an asked-for report is missing
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _summary_line(check: dict) -> str:
    parts = []
    for dtype, info in check["dtypes"].items():
        threshold = info.get("threshold_saturation")
        if info["verdict"] == "pass":
            beyond = info.get("beyond_stable_bits")
            parts.append(
                f"{dtype} pass"
                if beyond is None
                else f"{dtype} pass, {format_bits(beyond)} bits beyond stable"
            )
        elif threshold is not None:
            parts.append(f"{dtype} {info['verdict']} from max|h| {format_logit(threshold)}")
        else:
            parts.append(f"{dtype} {info['verdict']}")
    for dtype, why in ((check.get("result") or {}).get("skipped_dtypes") or {}).items():
        parts.append(f"skipped {dtype}: {why}")  # unavailable here, never dropped silently
    # an error verdict (raised, hung, malformed) has no bits of error to show
    bits = (
        ""
        if check["verdict"] == "error" or check.get("worst_bits") is None
        else f"worst {format_bits(check['worst_bits'])} bits  "
    )
    return (
        f"{check['verdict'].upper():<9} {check['nodeid']}  {check['implementation']}  "
        f"{bits}[{', '.join(parts)}]  policy {check.get('policy', 'autograd')}, "
        f"tolerance {check['tolerance_factor']:g}x"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or _is_worker(config) or not (state.checks or state.crashes):
        return
    terminalreporter.write_sep("=", f"gradverify: {len(state.checks)} check(s)")
    for check in state.checks:
        terminalreporter.write_line(_summary_line(check))
    for nodeid, what in state.crashes:
        terminalreporter.write_line(
            f"{'ERROR':<9} {nodeid}  {what}: the checks it was making are lost (those of "
            "the tests it had finished are above)",
            red=True,
        )
    if state.report_path is not None:
        terminalreporter.write_line(f"gradverify report written to {state.report_path}")
    if state.report_error is not None:
        terminalreporter.write_line(f"gradverify report failed: {state.report_error}", red=True)
