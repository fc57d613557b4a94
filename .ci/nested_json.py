"""Send deeply nested JSON bodies to every write operation of a running API (CI).

schemathesis generates bodies from the schema, a few levels deep at most; a client can send
thousands. Each write operation of the OpenAPI schema gets nested arrays and objects, as the
whole body and under each of its fields. Every answer must be a 4xx in JSON: a 5xx, an HTML
page or a dropped connection fails the run.

    python .ci/nested_json.py http://127.0.0.1:8765 API_KEY
"""

import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

WRITE_METHODS = ("post", "put", "patch")
TIMEOUT = 30


def nested_arrays(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def nested_objects(depth: int, inner: str = "1") -> str:
    return '{"a":' * depth + inner + "}" * depth


def whole_bodies() -> Iterator[tuple[str, str]]:
    for depth in (64, 1_000, 100_000):
        yield f"arrays x{depth}", nested_arrays(depth)
    for depth in (64, 1_000, 50_000):
        yield f"objects x{depth}", nested_objects(depth)
    yield "mixed x1000", '[{"a":' * 1_000 + "1" + "}]" * 1_000


def field_bodies(fields: list[str]) -> Iterator[tuple[str, str]]:
    for field in fields:
        for label, value in (("arrays", nested_arrays(1_000)), ("objects", nested_objects(1_000))):
            yield f"{field}: {label} x1000", json.dumps({field: None}).replace("null", value)
        yield f"{field}: objects x40", json.dumps({field: None}).replace("null", nested_objects(40))


def request(url: str, method: str, key: str, body: str | None = None) -> tuple[int, str, bytes]:
    """One HTTP request: (status, content type, body)."""
    call = urllib.request.Request(  # noqa: S310 - the CI's own server
        url,
        data=body.encode() if body is not None else None,
        method=method.upper(),
        headers={"Authorization": f"Token {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].split("/")[-1]]
    return node


def body_fields(schema: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """The top-level fields of the operation's JSON body (of each of its variants)."""
    content = operation.get("requestBody", {}).get("content", {})
    pending = [content.get("application/json", {}).get("schema", {})]
    fields: list[str] = []
    while pending:
        node = resolve(schema, pending.pop())
        pending.extend(node.get("oneOf", []) + node.get("anyOf", []) + node.get("allOf", []))
        if node.get("type") == "array" and "items" in node:
            pending.append(node["items"])
        fields.extend(name for name in node.get("properties", {}) if name not in fields)
    return fields


def an_existing_id(base: str, key: str) -> str:
    """A contact's id, so that operations on one item reach their body (else a random id)."""
    status, _type, body = request(f"{base}/api/v1/contacts/", "get", key)
    results = json.loads(body).get("results", []) if status == 200 else []
    return results[0]["id"] if results else str(uuid.uuid4())


def main(base: str, key: str) -> int:
    status, _type, body = request(f"{base}/api/schema/?format=json", "get", key)
    if status != 200:
        print(f"nested-json: the schema answered {status}", file=sys.stderr)
        return 1
    schema = json.loads(body)
    identifier = an_existing_id(base, key)
    failures, sent = [], 0
    for path, item in sorted(schema["paths"].items()):
        url = base + "/".join(
            identifier if part.startswith("{") else part for part in path.split("/")
        )
        for method in WRITE_METHODS:
            if method not in item:
                continue
            cases = [*whole_bodies(), *field_bodies(body_fields(schema, item[method]))]
            for label, case in cases:
                sent += 1
                try:
                    status, content_type, answer = request(url, method, key, case)
                except OSError as error:  # a dropped connection: the worker died
                    failures.append(f"{method.upper()} {path} [{label}]: {error}")
                    continue
                if not (400 <= status < 500 and content_type.startswith("application/json")):
                    failures.append(
                        f"{method.upper()} {path} [{label}]: {status} {content_type} "
                        f"{answer[:200]!r}"
                    )
    print(f"nested-json: {sent} deeply nested bodies sent, {len(failures)} failed", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1 if failures or not sent else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2]))
