import CairnCore
import CairnService

/// The report API's OpenAPI 3.1 document, built from ``ReportAPI/routes``: served at
/// `/api/v1/openapi.json` and kept in `docs/openapi.json` (a test compares the two).
public enum OpenAPIDocument {
    public static func build() -> JSON {
        var paths = JSONObject()
        for route in ReportAPI.routes {
            var parameters: [JSON] = [parameter("app", in: "path", "The app, by name or token; the read key must be this app's.")]
            for name in route.pathParameters { parameters.append(parameter(name, in: "path", "The \(name) id (percent-encoded).")) }
            for query in route.query {
                let schema: JSON =
                    switch query.kind {
                    case .integer: ["type": "integer"]
                    case .strings: ["type": "array", "items": ["type": "string"]]
                    case .string: query.name == "format" ? ["type": "string", "enum": ["json", "csv"], "default": "json"] : ["type": "string"]
                    }
                var entry: JSONObject = [
                    "name": .string(query.name), "in": "query", "required": .bool(query.required), "schema": schema,
                    "description": .string(
                        query.name == "format" ? "json (the default) or csv." : ReportParameter.summaries[query.field] ?? query.field
                    ),
                ]
                if query.kind == .strings {
                    entry["style"] = "form"
                    entry["explode"] = true
                }
                parameters.append(.object(entry))
            }
            let ok: JSON =
                route.answersRows
                ? [
                    "description": "The report's rows, as `cairn report … --format json` prints them; CSV with format=csv.",
                    "content": [
                        "application/json": ["schema": ["$ref": "#/components/schemas/Rows"]],
                        "text/csv": ["schema": ["type": "string"]],
                    ],
                ]
                : [
                    "description": "The record, as the CLI's `--format json` prints it.",
                    "content": ["application/json": ["schema": ["type": "object"]]],
                ]
            let operation: JSON = [
                "operationId": .string(route.operationID),
                "summary": .string(route.summary),
                "parameters": .array(parameters),
                "responses": [
                    "200": ok,
                    "400": error("A parameter is unknown or invalid; `parameter` names it."),
                    "401": error("No read key, or not a read key of any app (a write key never reads)."),
                    "403": error("The read key is another app's."),
                    "404": error("No such app, user or company."),
                    "429": error("The app already runs its most reports at once over HTTP (6); retry after Retry-After."),
                    "503": error("The database or a service cannot answer now."),
                    "504": error("The report ran past its time limit."),
                ],
            ]
            paths[route.path] = ["get": operation]
        }
        paths["/api/v1/openapi.json"] = [
            "get": [
                "operationId": "openAPIDocument", "summary": "This document.", "security": [],
                "responses": ["200": ["description": "The OpenAPI document.", "content": ["application/json": ["schema": ["type": "object"]]]]],
            ]
        ]
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Cairn report API",
                "version": .string(CairnVersion.current),
                "description": "Every report of `cairn report`, with the same parameters and the same JSON, for an app's read key.",
            ],
            "servers": [["url": "/"]],
            "security": [["readKey": []]],
            "paths": .object(paths),
            "components": [
                "securitySchemes": [
                    "readKey": [
                        "type": "http", "scheme": "bearer",
                        "description": "The app's read key (`cairn apps create` prints it; `cairn apps rotate-key --read` issues a new one).",
                    ]
                ],
                "schemas": [
                    "Rows": [
                        "type": "object", "required": ["rows"],
                        "properties": ["rows": ["type": "array", "items": ["type": "object"]]],
                    ],
                    "Error": [
                        "type": "object", "required": ["code", "message"],
                        "properties": [
                            "code": ["type": "string", "description": "A stable code (docs/rpc.md lists them)."],
                            "message": ["type": "string"],
                            "parameter": ["type": "string", "description": "The parameter at fault, as the request spelled it."],
                        ],
                    ],
                ],
            ],
        ]
    }

    static func parameter(_ name: String, in location: String, _ description: String) -> JSON {
        ["name": .string(name), "in": .string(location), "required": true, "schema": ["type": "string"], "description": .string(description)]
    }

    static func error(_ description: String) -> JSON {
        ["description": .string(description), "content": ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]]
    }
}
