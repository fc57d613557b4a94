"""OpenAPI: `POST /api/v1/consents/` takes one object or an array, and answers the same way."""

from typing import Any

from consent.api.serializers import MAX_BATCH

CONSENTS_PATH = "/api/v1/consents/"


def _one_or_many(schema: dict[str, Any], max_items: int | None = None) -> dict[str, Any]:
    array: dict[str, Any] = {"type": "array", "items": schema, "minItems": 1}
    if max_items:
        array["maxItems"] = max_items
    return {"oneOf": [schema, array]}


def one_or_many_consents(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook for drf-spectacular."""
    operation = result.get("paths", {}).get(CONSENTS_PATH, {}).get("post")
    if not operation:
        return result
    for content in operation.get("requestBody", {}).get("content", {}).values():
        content["schema"] = _one_or_many(content["schema"], MAX_BATCH)
    created = operation.get("responses", {}).get("201", {})
    for content in created.get("content", {}).values():
        content["schema"] = _one_or_many(content["schema"])
    return result
