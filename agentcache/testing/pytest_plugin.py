"""pytest plugin: record model calls into cassettes once, then replay them in CI with no API key.

Installed with agentcache (``pytest11`` entry point ``agentcache``; loading it imports nothing but pytest and
``agentcache`` itself); it does nothing until asked:

* ``--agentcache=record``: model calls made through an agentcache HTTP client (``agentcache.http_client()`` /
  ``async_http_client()`` passed to the SDK) go to the API and are written, per test, to
  ``<test dir>/cassettes/<module>/<test>.json``: deterministic, reviewable JSON with secrets scrubbed.
* ``--agentcache=replay``: those calls are answered only from the committed cassettes. A request with no
  recorded answer fails the test with a message naming the request and a diff against the nearest recorded
  one (the SDK sees a 404 and raises at once, without retries).
* ``--agentcache=off`` (the default): nothing changes.

The mode can also be set in the ini file (``agentcache_mode = replay``) and the folder with
``agentcache_cassettes`` (relative to each test file's directory). In record and replay every test runs in its
own agentcache namespace (the ``agentcache_namespace`` fixture, usable on its own), so cached entries never
leak from one test into another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from agentcache.integrations.cassette import Cassette

MODES = ("record", "replay", "off")
_KEY = pytest.StashKey["Cassette"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--agentcache=record|replay|off`` and the ini options ``agentcache_mode`` / ``agentcache_cassettes``."""
    group = parser.getgroup("agentcache", "agentcache model-call cassettes")
    group.addoption(
        "--agentcache",
        action="store",
        dest="agentcache_mode",
        choices=MODES,
        default=None,
        help="record model calls into cassettes, replay them (no network, no key), or off (default).",
    )
    parser.addini("agentcache_mode", "agentcache cassette mode: record, replay or off (default off)", default="off")
    parser.addini(
        "agentcache_cassettes",
        "folder of agentcache cassettes, relative to each test file's directory (default: cassettes)",
        default="cassettes",
    )


def _mode(config: pytest.Config) -> str:
    mode = config.getoption("agentcache_mode") or str(config.getini("agentcache_mode") or "off")
    if mode not in MODES:
        raise pytest.UsageError(f"agentcache_mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say which cassette mode the run uses (nothing when off)."""
    mode = _mode(config)
    return None if mode == "off" else f"agentcache: {mode} cassettes"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", name).strip("_") or "test"


def cassette_path(item: pytest.Item) -> Path:
    """Where the cassette of `item` lives: ``<test dir>/<agentcache_cassettes>/<module>/<test name>.json``."""
    folder = str(item.config.getini("agentcache_cassettes") or "cassettes")
    test_file = Path(str(item.path))
    cls = getattr(item, "cls", None)
    name = item.name if cls is None else f"{cls.__name__}.{item.name}"
    return test_file.parent / folder / test_file.stem / f"{_safe(name)}.json"


def namespace_for(nodeid: str) -> str:
    """A valid agentcache namespace unique to the test `nodeid` (readable, with a hash against clashes)."""
    import hashlib

    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:10]
    path, _, rest = nodeid.partition("::")
    readable = re.sub(r"[^A-Za-z0-9_.\-@+=]+", "-", f"{path.rsplit('/', 1)[-1]}-{rest}")
    return f"test-{digest}-{readable}"[:200]


@pytest.fixture
def agentcache_namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test in an agentcache namespace of its own (derived from its node id); yields the name."""
    import agentcache

    name = namespace_for(request.node.nodeid)
    with agentcache.namespace(name):
        yield name


@pytest.fixture(autouse=True)
def _agentcache_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette | None]:
    """In record/replay mode, the test's cassette, active for the HTTP clients it uses (and its namespace)."""
    mode = _mode(request.config)
    if mode == "off":
        yield None
        return
    from agentcache.integrations import cassette as _cassettes

    tape = _cassettes.Cassette(cassette_path(request.node), "replay" if mode == "replay" else "record")
    request.node.stash[_KEY] = tape
    request.getfixturevalue("agentcache_namespace")
    _cassettes.push_global(tape)
    try:
        yield tape
    finally:
        _cassettes.pop_global(tape)
        if mode == "record":
            tape.save()


@pytest.fixture
def agentcache_cassette(_agentcache_cassette: Cassette | None) -> Cassette | None:
    """The running test's cassette (`None` when the plugin is off)."""
    return _agentcache_cassette


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Fail a test whose requests missed the cassette in replay, with the explanation, even if the code under
    test caught the SDK's error."""
    report: Any = yield
    tape = item.stash.get(_KEY, None)
    if tape is not None and tape.misses and report.when == "call":
        text = "\n\n".join(tape.misses)
        if report.failed:
            report.sections.append(("agentcache replay", text))
        else:
            report.outcome = "failed"
            report.longrepr = text
    return report  # type: ignore[no-any-return]
