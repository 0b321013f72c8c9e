"""The feedback service's OpenAPI document (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from shared.web import OPERATIONAL_PATHS

RESULT = {
    "type": "object",
    "required": ["outcome"],
    "properties": {
        "outcome": {"type": "string", "enum": ["success", "failure", "error"]},
        "reason": {"type": "string"},
    },
}
FEEDBACK = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["return", "conversion"]},
        "reason": {"type": "string"},
    },
}


def _answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": RESULT},
            "text/xml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "leadflow feedback",
        "version": "1",
        "description": "Returns and conversions by event id, LeadConduit-compatible. Answers "
        "in JSON (default), XML (Accept: text/xml) or text (Accept: text/plain).",
    },
    "paths": {
        "/feedback": {
            "post": {
                "summary": "Return or convert a delivered lead",
                "parameters": [
                    {
                        "name": "event_id",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "pattern": "\\S"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": FEEDBACK},
                        "application/x-www-form-urlencoded": {"schema": FEEDBACK},
                        "text/xml": {"schema": {**FEEDBACK, "xml": {"name": "feedback"}}},
                    },
                },
                "responses": {
                    "201": _answer("Accepted"),
                    "200": _answer("Not accepted (outcome failure, with the reason)"),
                    "400": _answer("A missing or invalid field, or an unreadable body"),
                    "404": _answer("Unknown event id"),
                    "413": _answer("Body over 64 KiB"),
                    "415": _answer("Missing or unsupported Content-Type"),
                    "500": _answer("Unexpected error (details only in the log)"),
                    "503": _answer("The database is unavailable; retry later"),
                },
            },
        },
        **OPERATIONAL_PATHS,
    },
}
