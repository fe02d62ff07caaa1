"""The published contract, checked on real responses: every REST response the suite receives is validated
against `GET /openapi.json` with a JSON Schema validator (OpenAPI 3.1 schemas are JSON Schema 2020-12).

`Contract.violations(...)` says what a response breaks: a status the operation does not document, or a body
its schema refuses. Paths outside the document (health, GraphQL) and methods a path does not have (a 405
for any method) are not checked here; tests/test_openapi.py checks that every route is in the document."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.paths = [(re.compile("^" + "/".join("[^/]+" if part.startswith("{") else re.escape(part)
                                                 for part in p.rstrip("/").split("/")) + "/?$"), p)
                      for p in document["paths"]]
        # literal paths first, so /…/statistics/ is not taken for /…/{id}/
        self.paths.sort(key=lambda pair: pair[1].count("{"))
        self._validators: dict[tuple[str, str, str], Draft202012Validator | None] = {}
        self.checked: set[tuple[str, str, int]] = set()  # (template, method, status) of every response checked

    def coverage(self) -> tuple[list[str], int]:
        """The operations no checked response was a success of, and how many operations there are."""
        ops = [(t, m) for t, item in self.document["paths"].items() for m in item]
        ok = {(t, m) for t, m, status in self.checked if 200 <= status < 300}
        return [f"{m.upper()} {t}" for t, m in ops if (t, m) not in ok], len(ops)

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self.paths:
            if pattern.match(path):
                op = self.document["paths"][template].get(method.lower())
                return (template, op) if op else None
        return None

    def _validator(self, template: str, method: str, status: str) -> Draft202012Validator | None:
        key = (template, method, status)
        if key not in self._validators:
            response = self.document["paths"][template][method]["responses"][status]
            if "$ref" in response:
                response = self.document["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
            schema = (response.get("content") or {}).get("application/json", {}).get("schema")
            self._validators[key] = None if schema is None else Draft202012Validator(
                {"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema],
                 "components": self.document["components"]}, format_checker=FormatChecker())
        return self._validators[key]

    def violations(self, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
        method = "get" if method.upper() == "HEAD" else method.lower()
        found = self.operation(method, path)
        if found is None:
            return []
        template, op = found
        self.checked.add((template, method, status))
        where = f"{method.upper()} {path} → {status}"
        if str(status) not in op["responses"]:
            return [f"{where}: status not in the document (it lists {sorted(op['responses'])})"]
        if status == 204 or method == "head" or not content_type.startswith("application/json"):
            return []
        validator = self._validator(template, method, str(status))
        if validator is None:
            return []
        try:
            data = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return [f"{where}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message[:300]}"
                for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))[:10]]
