"""The OpenAPI description of what drf-spectacular cannot see: the completion endpoints (Channels
consumers, not DRF views), the API key scheme, /healthz, and the OpenAI error object that every
operation can answer with."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR = {"$ref": "#/components/schemas/Error"}
ERROR_STATUSES = {
    "400": "The request is malformed or a parameter is invalid (`param` names it).",
    "401": "No API key, or a wrong or revoked one.",
    "403": "The key's user may not do this.",
    "404": "No such model or object.",
    "405": "The method is not allowed here.",
    "408": "The body did not arrive in time.",
    "413": "The body is larger than the server accepts.",
    "429": "Too many requests.",
    "503": "A service the request needs (a worker, Redis, the database) is unavailable.",
    "504": "The request ran past its deadline.",
}
NULLABLE_INT = {"type": "integer", "minimum": 1, "nullable": True}
SAMPLING = {
    "model": {"type": "string", "maxLength": 200},
    "max_tokens": NULLABLE_INT,
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
    "top_k": {"type": "integer", "minimum": 0, "maximum": 1000000, "nullable": True},
    "stop": {"nullable": True, "oneOf": [{"type": "string"},
                                          {"type": "array", "maxItems": 4, "items": {"type": "string"}}]},
    "seed": {"type": "integer", "nullable": True},
    "n": {"type": "integer", "minimum": 1, "maximum": 1, "nullable": True},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "nullable": True, "properties": {"include_usage": {"type": "boolean"}}},
    "user": {"type": "string", "maxLength": 256},
}
USAGE = {"type": "object", "properties": {k: {"type": "integer"} for k in
                                          ("prompt_tokens", "completion_tokens", "total_tokens")}}
SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
            "message": {"type": "string"}, "type": {"type": "string"},
            "param": {"type": "string", "nullable": True}, "code": {"type": "string", "nullable": True}}}},
    },
    "ChatCompletionRequest": {
        "type": "object", "required": ["model", "messages"],
        "properties": {**SAMPLING, "max_completion_tokens": NULLABLE_INT, "messages": {
            "type": "array", "minItems": 1, "maxItems": 512, "items": {
                "type": "object", "required": ["role", "content"], "properties": {
                    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
                    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {
                        "type": "object", "required": ["type", "text"],
                        "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}}]},
                }}}},
    },
    "CompletionRequest": {
        "type": "object", "required": ["model", "prompt"],
        "properties": {**SAMPLING, "echo": {"type": "boolean"}, "prompt": {
            "oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string"}}]}},
    },
    "Completion": {
        "type": "object", "required": ["id", "object", "created", "model", "choices"],
        "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "created": {"type": "integer"},
                       "model": {"type": "string"}, "system_fingerprint": {"type": "string"},
                       "choices": {"type": "array", "items": {"type": "object"}}, "usage": USAGE},
    },
}


def _completion(summary: str, request: str) -> dict:
    return {"post": {
        "operationId": request.replace("Request", "").lower() + "_create",
        "summary": summary,
        "tags": ["OpenAI-compatible"],
        "security": [{"ApiKey": []}],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}}},
        "responses": {"200": {"description": "The answer: one JSON object, or server-sent events when `stream` is true.",
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Completion"}},
                                          "text/event-stream": {"schema": {"type": "string"}}}}},
    }}


def add_completion_endpoints(result, generator, request, public):
    """drf-spectacular post-processing hook."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    result["components"].setdefault("securitySchemes", {}).setdefault("ApiKey", {"type": "http", "scheme": "bearer"})
    paths = result.setdefault("paths", {})
    paths["/v1/chat/completions"] = _completion("Chat completion (OpenAI's shape)", "ChatCompletionRequest")
    paths["/v1/completions"] = _completion("Text completion (OpenAI's shape)", "CompletionRequest")
    paths["/healthz"] = {"get": {"operationId": "healthz", "summary": "Whether the service can serve", "security": [{}],
                                 "tags": ["health"], "responses": {
                                     "200": {"description": "Everything answers.",
                                             "content": {"application/json": {"schema": {"type": "object"}}}},
                                     "503": {"description": "A component is down.",
                                             "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path == "/healthz":
                continue
            # Ollama's own error shape ({"error": "..."}) on its endpoints, OpenAI's everywhere else.
            ollama = "Ollama-compatible" in operation.get("tags", [])
            schema = {"type": "object", "required": ["error"]} if ollama else ERROR
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(status, {"description": description,
                                              "content": {"application/json": {"schema": schema}}})
    return result


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "console.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer lt-…`"}
