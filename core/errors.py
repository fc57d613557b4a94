"""A domain validation error with a nested shape (per item of a batch, per sub-object)."""

from typing import Any

from django.core.exceptions import ValidationError


class StructuredValidationError(ValidationError):
    """Carries `detail` as the API should answer it: `{"consents": [{}, {"purpose": [...]}]}`."""

    def __init__(self, detail: Any) -> None:
        self.detail = detail
        super().__init__(str(detail))


def error_detail(error: ValidationError) -> Any:
    """The field-keyed detail of any domain validation error."""
    if isinstance(error, StructuredValidationError):
        return error.detail
    if hasattr(error, "error_dict"):
        return error.message_dict
    return {"non_field_errors": error.messages}
