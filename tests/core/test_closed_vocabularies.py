"""Outbox topics, suppression, timeline and source kinds are closed vocabularies (enums):
production code names them by member, never as a bare string a typo would slip through."""

import ast
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]
VOCABULARY_ARGUMENTS = {"topic", "kind", "source_kind"}


def bare_strings(source: str, label: str) -> list[str]:
    """`topic="..."`, `kind="..."`, `source_kind="..."` arguments and defaults, and
    comparisons of such a name with a string, in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg in VOCABULARY_ARGUMENTS:
            values = [node.value]
        elif isinstance(node, ast.Compare) and _name(node.left) in VOCABULARY_ARGUMENTS:
            values = node.comparators
        elif isinstance(node, ast.arguments):
            named = [*node.args, *node.kwonlyargs]
            defaults = [*([None] * (len(node.args) - len(node.defaults))), *node.defaults]
            values = [
                default
                for arg, default in zip(named, [*defaults, *node.kw_defaults], strict=True)
                if arg.arg in VOCABULARY_ARGUMENTS and default is not None
            ]
        else:
            continue
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append(f"{label}:{value.lineno} {value.value!r}")
    return found


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def test_production_code_names_topics_and_kinds_by_enum_member() -> None:
    ours = [Path(config.path) for config in apps.get_app_configs()]
    packages = [
        ROOT / "config",
        *(path for path in ours if path.is_relative_to(ROOT) and "site-packages" not in path.parts),
    ]
    modules = [
        path
        for package in packages
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
    ]

    found = [
        line
        for path in modules
        for line in bare_strings(path.read_text(), str(path.relative_to(ROOT)))
    ]

    assert {package.name for package in packages} >= {"config", "consent", "contacts", "crmsync"}
    assert found == []


def test_the_check_finds_a_bare_topic_a_kind_and_a_comparison() -> None:
    source = (
        'outbox_emit(topic="contact.updated", payload={"kind": "x"})\n'
        'def add(*, kind="email", summary=""): ...\n'
        'if event.source_kind == "api": ...\n'
    )

    found = bare_strings(source, "probe.py")

    assert sorted(found) == [
        "probe.py:1 'contact.updated'",
        "probe.py:2 'email'",
        "probe.py:3 'api'",
    ]
