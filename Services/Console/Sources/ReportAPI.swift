import CairnCore
import CairnMethods
import CairnReporting
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The HTTP report API: every report, user, company and timeline the CLI shows, as the same
/// JSON, for an app's read key. Each route is described once here; the router and the OpenAPI
/// document are both built from ``routes``.
struct ReportAPI: Sendable {
    let runner: ReportRunner
    let keys: ReadKeys
    let limiter: ReportLimiter

    /// One GET route: its path in OpenAPI's spelling (`{app}`), what it answers, its query
    /// parameters, and how it answers.
    struct Route: Sendable {
        var path: String
        var operationID: String
        var summary: String
        /// Path parameters besides `app`.
        var pathParameters: [String]
        var query: [ReportParameter]
        var answersRows: Bool
        var handle: @Sendable (ReportAPI, Request, Reader, _ pathValues: [String: String]) async throws -> Response
    }

    static let prefix = "/api/v1/apps/{app}"

    /// Every route, reports first.
    static var routes: [Route] {
        var routes = ReportCatalog.entries.map { entry in
            let query = ReportQuery(entry)
            return Route(
                path: "\(prefix)/reports/\(entry.name)",
                operationID: "report" + entry.name.prefix(1).uppercased() + entry.name.dropFirst(),
                summary: entry.summary,
                pathParameters: [],
                query: query.parameters + [ReportParameter(name: "format", field: "format", kind: .string)],
                answersRows: true
            ) { api, request, reader, _ in
                let parameters = try QueryParameters(query: request.uri.query)
                let format = try parameters.single("format") ?? "json"
                let params = try query.params(app: reader.token, query: parameters, ignoring: ["format"])
                do {
                    let table = try await entry.run(params, on: api.runner)
                    return try Self.table(table, format: format, name: entry.name)
                } catch {
                    throw APIRefusal.from(error, parameterName: query.name(ofField:))
                }
            }
        }
        let timeline = ReportQuery(ReportCatalog.entry(named: "timeline")!)
        routes.append(
            Route(
                path: "\(prefix)/users/{user}",
                operationID: "showUser",
                summary: UsersShow.summary,
                pathParameters: ["user"],
                query: [],
                answersRows: false
            ) { api, request, reader, values in
                _ = try QueryParameters(query: request.uri.query).onlyKnown([])
                do {
                    return Self.json(try await api.runner.user(.init(app: reader.token, user: values["user"] ?? "")))
                } catch {
                    throw APIRefusal.from(error)
                }
            }
        )
        routes.append(
            Route(
                path: "\(prefix)/users/{user}/timeline",
                operationID: "userTimeline",
                summary: ReportTimeline.summary,
                pathParameters: ["user"],
                query: timeline.parameters.filter { $0.field != "user" } + [ReportParameter(name: "format", field: "format", kind: .string)],
                answersRows: true
            ) { api, request, reader, values in
                let parameters = try QueryParameters(query: request.uri.query)
                guard !parameters.pairs.contains(where: { $0.name == "user" }) else {
                    throw APIRefusal(.badRequest, .unknownParameter, "user is in the path; this route takes no user parameter", parameter: "user")
                }
                let format = try parameters.single("format") ?? "json"
                guard case .object(var params) = try timeline.params(app: reader.token, query: parameters, ignoring: ["format"]) else {
                    throw APIRefusal(.internalServerError, .invalidParams, "the timeline's params are not an object")
                }
                params["user"] = .string(values["user"] ?? "")
                do {
                    let table = try await ReportCatalog.entry(named: "timeline")!.run(.object(params), on: api.runner)
                    return try Self.table(table, format: format, name: "timeline")
                } catch {
                    throw APIRefusal.from(error, parameterName: timeline.name(ofField:))
                }
            }
        )
        routes.append(
            Route(
                path: "\(prefix)/companies/{company}",
                operationID: "showCompany",
                summary: CompaniesShow.summary,
                pathParameters: ["company"],
                query: [],
                answersRows: false
            ) { api, request, reader, values in
                _ = try QueryParameters(query: request.uri.query).onlyKnown([])
                do {
                    return Self.json(try await api.runner.company(.init(app: reader.token, company: values["company"] ?? "")))
                } catch {
                    throw APIRefusal.from(error)
                }
            }
        )
        return routes
    }

    /// Adds every route, and `/api/v1/openapi.json`, to `router`.
    func register(on router: Router<BasicRequestContext>) {
        let api = self
        for route in Self.routes {
            let path = route.path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
            router.get(RouterPath(path)) { request, context -> Response in
                do {
                    let app = try Self.pathValue(context.parameters.get("app"))
                    var values: [String: String] = [:]
                    for name in route.pathParameters { values[name] = try Self.pathValue(context.parameters.get(name)) }
                    let reader = try await api.keys.reader(for: request)
                    try ReadKeys.authorize(reader, app: app)
                    return try await api.limiter.run(app: reader.token) { try await route.handle(api, request, reader, values) }
                } catch {
                    throw APIRefusal.from(error)
                }
            }
        }
        router.get("/api/v1/openapi.json") { _, _ -> Response in
            Self.json(OpenAPIDocument.build(), headers: [.cacheControl: "no-cache"])
        }
    }

    /// A path segment as the client meant it: percent-decoded (a user id may hold `/` as `%2F`).
    static func pathValue(_ raw: String?) throws(APIRefusal) -> String {
        guard let raw, !raw.isEmpty else { throw APIRefusal(.badRequest, .invalidParameter, "the path is missing a segment") }
        return try QueryParameters.decode(Substring(raw.replacingOccurrences(of: "+", with: "%2B")), parameter: "path")
    }

    static func table(_ table: ReportTableResult, format: String, name: String) throws -> Response {
        switch format {
        case "json":
            // The CLI's `--format json`: `{"rows": [...]}`.
            return json(["rows": .array(table.rows.map(JSON.object))])
        case "csv":
            return Response(
                status: .ok,
                headers: [
                    .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name).csv\"", .cacheControl: "no-store",
                    .xContentTypeOptions: "nosniff",
                ],
                body: ResponseBody(byteBuffer: ByteBuffer(string: TableText.csv(columns: table.columns, rows: table.rows) + "\n"))
            )
        default:
            throw APIRefusal(.badRequest, .invalidParameter, "format must be json or csv; found '\(format)'", parameter: "format")
        }
    }

    static func json(_ value: JSON, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        headers[.xContentTypeOptions] = "nosniff"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }
}

extension QueryParameters {
    /// Refuses any parameter not in `known`.
    func onlyKnown(_ known: Set<String>) throws(APIRefusal) -> Self {
        if let unknown = pairs.first(where: { !known.contains($0.name) }) {
            throw APIRefusal(.badRequest, .unknownParameter, "\(unknown.name) is not a parameter of this route", parameter: unknown.name)
        }
        return self
    }
}
