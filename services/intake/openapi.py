"""The intake's OpenAPI document (served at ``/openapi.json``, checked by schemathesis)."""

from __future__ import annotations

from typing import Any

from shared.web import OPERATIONAL_PATHS

RESULT = {
    "type": "object",
    "required": ["outcome", "lead", "price"],
    "properties": {
        "outcome": {"type": "string", "enum": ["success", "failure", "error", "queued"]},
        "reason": {"type": "string"},
        "lead": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string", "pattern": "^[0-9a-f]{24}$"}},
        },
        "price": {"type": "number"},
    },
}
QUOTE = {
    "type": "object",
    "required": ["outcome", "price", "ping_id"],
    "properties": {
        "outcome": {"type": "string", "enum": ["success", "failure", "error"]},
        "reason": {"type": "string"},
        "price": {"type": "number"},
        "ping_id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
    },
}
TOO_MANY = {
    "type": "object",
    "required": ["status", "message", "retry_after"],
    "properties": {
        "status": {"const": 429},
        "message": {"type": "string"},
        "retry_after": {"type": "integer", "description": "milliseconds"},
    },
}
ERROR = {
    "type": "object",
    "required": ["outcome", "reason"],
    "properties": {"outcome": {"const": "error"}, "reason": {"type": "string"}},
}
FIELDS = {
    "type": "object",
    "additionalProperties": True,
    "description": "The lead's fields; undeclared fields are kept as given.",
}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": schema},
            "text/xml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }


ERRORS = {
    "400": _answer("The body cannot be read (the parser's message)", ERROR),
    "401": _answer("The source requires HTTP Basic auth with its API key", ERROR),
    "404": _answer("Unknown flow or source", ERROR),
    "406": _answer("No acceptable answer format", ERROR),
    "413": _answer("Body over the size limit", ERROR),
    "415": _answer("Missing or unsupported Content-Type", ERROR),
    "503": _answer("The database is unavailable; retry later", ERROR),
}
BODY = {
    "required": False,
    "content": {
        "application/x-www-form-urlencoded": {"schema": FIELDS},
        "application/json": {"schema": FIELDS},
        "application/xml": {"schema": {**FIELDS, "xml": {"name": "lead"}}},
    },
}
PING_ANSWERS = {
    "200": _answer("The quote: the best bid less the margin", QUOTE),
    "429": {
        "description": "Over a ping limit; retry after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": TOO_MANY}},
    },
    **ERRORS,
}
PATH_PARAMETERS = [
    {"name": "flow_id", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "source_id", "in": "path", "required": True, "schema": {"type": "string"}},
]
SECURITY: list[dict[str, list[str]]] = [{"sourceApiKey": []}, {}]

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "leadflow intake",
        "version": "1",
        "description": "Lead submission, LeadConduit-compatible. Answers in JSON (default), "
        "XML (Accept: text/xml) or plain text (Accept: text/plain).",
    },
    "components": {
        "securitySchemes": {
            "sourceApiKey": {
                "type": "http",
                "scheme": "basic",
                "description": "user API, the source's api_key as password",
            }
        },
    },
    "paths": {
        "/flows/{flow_id}/sources/{source_id}/submit": {
            "parameters": PATH_PARAMETERS,
            "post": {
                "summary": "Submit a lead",
                "security": SECURITY,
                "requestBody": BODY,
                "responses": {"201": _answer("Stored; the outcome so far", RESULT), **ERRORS},
            },
            "get": {
                "summary": "Submit a lead with its fields in the query string",
                "security": SECURITY,
                "responses": {"201": _answer("Stored; the outcome so far", RESULT), **ERRORS},
            },
        },
        "/flows/{flow_id}/sources/{source_id}/ping": {
            "parameters": PATH_PARAMETERS,
            "post": {
                "summary": "Ping: a lead's fields without its contact fields, for a quote "
                "(post the lead to /submit with the ping_id)",
                "security": SECURITY,
                "requestBody": BODY,
                "responses": PING_ANSWERS,
            },
            "get": {
                "summary": "Ping with the fields in the query string",
                "security": SECURITY,
                "responses": PING_ANSWERS,
            },
        },
        "/leads/{lead_id}": {
            "get": {
                "summary": "A lead's current outcome (for sources that were answered queued)",
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "lead_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _answer("The lead's outcome", RESULT),
                    "401": ERRORS["401"],
                    "404": ERRORS["404"],
                    "406": ERRORS["406"],
                    "503": ERRORS["503"],
                },
            },
        },
        **OPERATIONAL_PATHS,
    },
}
