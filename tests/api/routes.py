"""Every operation of the API, read from its OpenAPI schema: a new endpoint is covered at once."""

from dataclasses import dataclass

from drf_spectacular.generators import SchemaGenerator

WRITE_METHODS = ("post", "put", "patch")
ALL_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # as in the schema: /api/v1/contacts/{id}/

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def has_id(self) -> bool:
        return "{" in self.path

    def url(self, identifier: str) -> str:
        """The path with each parameter set to `identifier`."""
        parts = [
            identifier if part.startswith("{") and part.endswith("}") else part
            for part in self.path.split("/")
        ]
        return "/".join(parts)


def api_operations() -> list[Operation]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        Operation(method, path)
        for path, item in sorted(schema["paths"].items())
        for method in ALL_METHODS
        if method in item
    ]


def api_paths() -> dict[str, set[str]]:
    """Each path with the methods it answers."""
    paths: dict[str, set[str]] = {}
    for operation in api_operations():
        paths.setdefault(operation.path, set()).add(operation.method)
    return paths


OPERATIONS = api_operations()
WRITES = [operation for operation in OPERATIONS if operation.method in WRITE_METHODS]
WITH_ID = [operation for operation in OPERATIONS if operation.has_id]
NOT_ALLOWED = [
    Operation(method, path)
    for path, methods in sorted(api_paths().items())
    for method in ALL_METHODS
    if method not in methods
]
