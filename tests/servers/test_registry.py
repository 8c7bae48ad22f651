"""The server family: every module in retire/servers provides the whole interface, the registry
lists each once, and nothing outside retire/servers names a server, so adding one is one module
plus one registry line (issue #15)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
from pathlib import Path

import pytest

import retire
import retire.servers
from retire.servers import _MODULES, DEFAULT_PRESET, PRESETS, SERVERS, Server, find, server

PACKAGE = Path(retire.__file__).parent
MODULES = sorted(m.name for m in pkgutil.iter_modules(retire.servers.__path__))
# The lab plays the servers (fake Triton, demo model stores): naming them is its job.
OUTSIDE = [p for p in sorted(PACKAGE.rglob("*.py")) if p.parts[len(PACKAGE.parts)] not in ("servers", "lab")]


def test_every_server_module_is_registered_once() -> None:
    assert sorted(_MODULES) == MODULES and len(set(_MODULES)) == len(_MODULES)
    assert len(SERVERS) == len(MODULES) and next(iter(SERVERS)) == DEFAULT_PRESET
    # loaded.ask takes either name: presets of one server (stock and patched TF Serving) share its
    # name only where they share its status API, so either answers for it.
    by_name: dict[str, set[object]] = {}
    for s in SERVERS.values():
        by_name.setdefault(s.name, set()).add(s.ask_loaded)
    assert all(len(asks) == 1 for asks in by_name.values())


@pytest.mark.parametrize("module", MODULES)
def test_every_server_module_provides_the_whole_interface(module: str) -> None:
    srv = importlib.import_module(f"retire.servers.{module}").SERVER
    assert isinstance(srv, Server) and SERVERS[srv.preset] is srv and server(srv.preset) is srv
    assert find(srv.preset) is srv and find(srv.name) is not None
    assert find(srv.name).ask_loaded is srv.ask_loaded  # type: ignore[union-attr]
    for f in dataclasses.fields(Server):
        assert getattr(srv, f.name) is not dataclasses.MISSING
    assert srv.preset and srv.name and srv.metric and srv.model_label
    assert srv.version_label or srv.per_model  # "" only for a counter per model
    assert srv.not_a_version and srv.status_api and callable(srv.ask_loaded) and callable(srv.version_of)
    assert callable(srv.canonical) and (srv.label_is_version is None or callable(srv.label_is_version))
    assert srv.version_of("not a version at all") is None
    assert (srv.policy_file is None) == (srv.read_policy is None)
    assert srv.store is None or callable(srv.store)
    assert srv.read_model_config is None or callable(srv.read_model_config)
    assert PRESETS[srv.preset] == {
        "metric": srv.metric,
        "model_label": srv.model_label,
        "version_label": srv.version_label,
    }


def _names() -> set[str]:
    return {n.lower() for s in SERVERS.values() for n in (s.preset, s.name)} | set(MODULES)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (prose, not code)."""
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            out.add(id(first.value))
    return out


def _named_servers(path: Path) -> list[str]:
    """Where a file's code names a server: an import of a server module, or a string that is a
    server's name (a dispatch key such as `== "triton"`). Prose (docstrings, messages, help) may
    mention servers; only code that switches on one is what the family replaces."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names, prose, found = _names(), _docstrings(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            modules = []
        servers = {m.split(".")[2] for m in modules if m.startswith("retire.servers.")} & set(MODULES)
        found += [f"line {node.lineno}: imports retire.servers.{m}" for m in sorted(servers)]
        text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
        if text is not None and id(node) not in prose and text.strip().lower() in names:
            found.append(f"line {node.lineno}: {text!r}")
    return found


@pytest.mark.parametrize("path", OUTSIDE, ids=[str(p.relative_to(PACKAGE)) for p in OUTSIDE])
def test_nothing_outside_retire_servers_names_a_server(path: Path) -> None:
    assert _named_servers(path) == []


def test_the_check_finds_a_server_switch(tmp_path: Path) -> None:
    """The grep-style test above can fail: a string switch or a server module import is found."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        '"""Docs may say triton."""\n'
        "from retire.servers.triton import version_of\n"
        "from retire.servers import torchserve\n"
        "def f(preset: str) -> bool:\n"
        '    """tfserving-patched is the default."""\n'
        '    return preset == "tfserving-patched" or preset == "Triton"\n'
    )
    assert _named_servers(bad) == [
        "line 2: imports retire.servers.triton",
        "line 3: imports retire.servers.torchserve",
        "line 6: 'tfserving-patched'",
        "line 6: 'Triton'",
    ]
