import CairnCore
import CairnMethods
import CairnPostgres
import CairnReporting
import CairnWire
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The web console: pages for a person with a browser, on the report API's address. Every page
/// is a GET whose URL holds the whole query (so it can be shared), rendered on the server from
/// the same reports the API answers, with charts as SVG and their numbers in a table and a CSV
/// link beside them. Nothing here changes data, except replaying dead letters, which takes a
/// write key and the session's CSRF token.
struct Console: Sendable {
    let runner: ReportRunner
    let keys: ReadKeys
    let limiter: ReportLimiter
    let library: MustacheLibrary
    let services: ServiceClients
    let assets: [String: (type: String, bytes: [UInt8])]

    /// The pages, in the navigation's order: path segment and label.
    static let pages: [(path: String, label: String)] = [
        ("overview", "Overview"), ("events", "Events"), ("funnel", "Funnels"), ("retention", "Retention"), ("sessions", "Sessions"),
        ("engagement", "Engagement"), ("people", "People"), ("companies", "Companies"), ("pipeline", "Pipeline"), ("live", "Live"),
    ]

    /// Loads the templates and static files shipped with the module.
    static func load(runner: ReportRunner, keys: ReadKeys, limiter: ReportLimiter, services: ServiceClients) async throws -> Console {
        guard let resources = Bundle.module.resourcePath else { throw ConsoleError(.configuration, "the console's templates are missing") }
        let library = try await MustacheLibrary(directory: resources + "/Templates")
        var assets: [String: (String, [UInt8])] = [:]
        for (name, type) in [
            ("console.css", "text/css; charset=utf-8"), ("console.js", "text/javascript; charset=utf-8"), ("favicon.svg", "image/svg+xml"),
        ] {
            guard let data = FileManager.default.contents(atPath: resources + "/Static/" + name) else {
                throw ConsoleError(.configuration, "the console's \(name) is missing")
            }
            assets[name] = (type, Array(data))
        }
        return Console(runner: runner, keys: keys, limiter: limiter, library: library, services: services, assets: assets)
    }

    // MARK: Routes

    func register(on router: Router<BasicRequestContext>) {
        let console = self
        router.get("/") { request, _ -> Response in
            if let reader = try? await console.keys.reader(for: request) { return Self.redirect("/apps/\(Self.encode(reader.name))/overview") }
            return Self.redirect("/login")
        }
        router.get("/login") { request, _ -> Response in
            let next = (try? QueryParameters(query: request.uri.query).single("next")) ?? nil
            return console.render("login", ["next": next ?? "", "error": ""], status: .ok)
        }
        router.post("/login") { request, _ -> Response in try await console.login(request) }
        router.post("/logout") { request, _ -> Response in try await console.logout(request) }
        router.get("/favicon.ico") { _, _ -> Response in Self.redirect("/static/favicon.svg") }
        router.get("/static/:file") { _, context -> Response in
            guard let name = context.parameters.get("file"), let asset = console.assets[name] else { throw HTTPError(.notFound) }
            return Response(
                status: .ok,
                headers: [.contentType: asset.type, .cacheControl: "max-age=3600", .xContentTypeOptions: "nosniff"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: asset.bytes))
            )
        }
        for page in Self.pages {
            router.get(RouterPath("/apps/:app/\(page.path)")) { request, context -> Response in
                await console.page(page.path, request: request, app: context.parameters.get("app") ?? "", subject: nil)
            }
        }
        router.get("/apps/:app/people/:user") { request, context -> Response in
            await console.page("person", request: request, app: context.parameters.get("app") ?? "", subject: context.parameters.get("user"))
        }
        router.get("/apps/:app/companies/:company") { request, context -> Response in
            await console.page("company", request: request, app: context.parameters.get("app") ?? "", subject: context.parameters.get("company"))
        }
        router.get("/apps/:app/live/stream") { request, context -> Response in
            try await console.liveStream(request, app: context.parameters.get("app") ?? "")
        }
        router.post("/apps/:app/deadletters/replay") { request, context -> Response in
            try await console.replay(request, app: context.parameters.get("app") ?? "")
        }
    }

    // MARK: Sessions

    func login(_ request: Request) async throws -> Response {
        let form: QueryParameters
        let next: String
        let key: String?
        do {
            try Self.requireSameOrigin(request)
            form = try await Self.form(request)
            next = try form.single("next") ?? ""
            key = try form.single("key")
        } catch let refusal as APIRefusal {
            return render("login", ["next": "", "error": refusal.message], status: refusal.status)
        }
        guard let key, !key.isEmpty else {
            return render("login", ["next": next, "error": "Enter the app's read key."], status: .unauthorized)
        }
        let reader: Reader
        do {
            reader = try await keys.reader(forKey: key)
        } catch let refusal as APIRefusal {
            return render("login", ["next": next, "error": refusal.message], status: .unauthorized)
        }
        let cookie = keys.sessions.cookie(for: reader, now: .now())
        // Only a path of this app's pages: never another site, never another app.
        let home = "/apps/\(Self.encode(reader.name))/"
        let target = next.hasPrefix(home) && !next.contains("//") && !next.contains("\\") ? next : home + "overview"
        var response = Self.redirect(target)
        response.headers[.setCookie] = Self.sessionCookie(cookie, request: request, maxAge: Int(keys.sessions.lifetime.components.seconds))
        return response
    }

    func logout(_ request: Request) async throws -> Response {
        try Self.requireSameOrigin(request)
        let form = try await Self.form(request)
        guard let cookie = ReadKeys.cookie(ReadKeys.cookieName, in: request.headers[values: .cookie]),
            let token = try form.single("csrf"), keys.sessions.constantTimeEqual(token, keys.sessions.csrfToken(forCookie: cookie))
        else { throw APIRefusal(.forbidden, .invalidCSRFToken, "log out from the console's own button") }
        // The cookie stops working here and now, not only in this browser.
        let parts = cookie.split(separator: ".")
        if parts.count == 5, let expiry = Int64(parts[2]) { keys.sessions.revoked.revoke(String(parts[4]), until: expiry) }
        var response = Self.redirect("/login")
        response.headers[.setCookie] = Self.sessionCookie("", request: request, maxAge: 0)
        return response
    }

    /// Refuses a form posted from another site (login CSRF among others): browsers say where a
    /// request comes from in `Sec-Fetch-Site`, and a form of the console comes from itself. (Not
    /// `Origin` against `Host`: a reverse proxy may rewrite the host.)
    static func requireSameOrigin(_ request: Request) throws(APIRefusal) {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], !["same-origin", "none"].contains(site.lowercased()) {
            throw APIRefusal(.forbidden, .invalidCSRFToken, "the console's forms are posted only from the console itself")
        }
    }

    static func sessionCookie(_ value: String, request: Request, maxAge: Int) -> String {
        // Secure when a TLS-terminating proxy says the browser spoke HTTPS.
        let secure = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https" ? "; Secure" : ""
        return "\(ReadKeys.cookieName)=\(value); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)\(secure)"
    }

    /// The session's reader for a page, or a redirect to the login page that comes back here.
    /// A page's session: its reader and CSRF token, or the answer to send instead.
    enum Session {
        case reader(Reader, csrf: String)
        case answer(Response)
    }

    private func session(_ request: Request, app: String) async throws -> Session {
        guard let cookie = ReadKeys.cookie(ReadKeys.cookieName, in: request.headers[values: .cookie]) else {
            return .answer(Self.redirect("/login?next=" + Self.encode(request.uri.description)))
        }
        do {
            let reader = try await keys.reader(for: request)
            try ReadKeys.authorize(reader, app: app)
            return .reader(reader, csrf: keys.sessions.csrfToken(forCookie: cookie))
        } catch let refusal as APIRefusal where refusal.status == .unauthorized {
            return .answer(Self.redirect("/login?next=" + Self.encode(request.uri.description)))
        } catch let refusal as APIRefusal {
            return .answer(render("login", ["next": "", "error": refusal.message], status: refusal.status))
        }
    }

    // MARK: Pages

    /// A page, or a page that says what was wrong with its request (never a bare JSON error to a browser).
    func page(_ name: String, request: Request, app rawApp: String, subject: String?) async -> Response {
        do {
            return try await buildPage(name, request: request, app: rawApp, subject: subject)
        } catch {
            let refusal = APIRefusal.from(error)
            return render("page", PageView(title: "Cannot show this page", error: refusal.message), status: refusal.status)
        }
    }

    private func buildPage(_ name: String, request: Request, app rawApp: String, subject: String?) async throws -> Response {
        let app = try ReportAPI.pathValue(rawApp)
        let (reader, csrf): (Reader, String)
        switch try await session(request, app: app) {
        case .reader(let found, let token): (reader, csrf) = (found, token)
        case .answer(let response): return response
        }
        let query = try QueryParameters(query: request.uri.query)
        // The people page's "open a profile" box: straight to that person's page, period kept.
        if name == "people", let user = try query.single("user"), !user.isEmpty {
            let period = query.pairs.filter { ["since", "until", "tz"].contains($0.name) }
            return Self.redirect("/apps/\(Self.encode(reader.name))/people/\(Self.encode(user))?" + Self.encode(period))
        }
        // A page's URL always holds its period, so that it can be shared as it is. Empty bounds
        // mean all time: the default of the pages whose reports keep all-time rollups only
        // (companies, engagement), where a period reads the events themselves.
        if name != "live", name != "pipeline", try query.single("since") == nil || query.single("until") == nil {
            let period = Self.allTimePages.contains(name) ? (since: "", until: "") : try await defaultPeriod(reader.token)
            var pairs = query.pairs.filter { $0.name != "since" && $0.name != "until" }
            pairs.insert(("until", try query.single("until") ?? period.until), at: 0)
            pairs.insert(("since", try query.single("since") ?? period.since), at: 0)
            return Self.redirect(request.uri.path + "?" + Self.encode(pairs))
        }
        let context = PageContext(console: self, reader: reader, app: reader.name, query: query, path: request.uri.path)
        var view = PageView(title: "", app: AppView(name: reader.name, csrf: csrf))
        view.nav = Self.pages.map { LinkView(label: $0.label, href: "/apps/\(Self.encode(reader.name))/\($0.path)", current: $0.path == name) }
        var status = HTTPResponse.Status.ok
        do {
            try await build(name, subject: subject, context: context, csrf: csrf, view: &view)
        } catch {
            let refusal = APIRefusal.from(error, parameterName: { $0.replacingUnderscores })
            view.error = refusal.message
            status = refusal.status
        }
        if view.title.isEmpty { view.title = Self.pages.first { $0.path == name }?.label ?? name }
        return render("page", view, status: status)
    }

    private func build(_ name: String, subject: String?, context: PageContext, csrf: String, view: inout PageView) async throws {
        switch name {
        case "overview": try await ConsolePage.overview(context, &view)
        case "events": try await ConsolePage.events(context, &view)
        case "funnel": try await ConsolePage.funnel(context, &view)
        case "retention": try await ConsolePage.retention(context, &view)
        case "sessions": try await ConsolePage.sessions(context, &view)
        case "engagement": try await ConsolePage.engagement(context, &view)
        case "people": try await ConsolePage.people(context, &view)
        case "person": try await ConsolePage.person(context, user: try ReportAPI.pathValue(subject), &view)
        case "companies": try await ConsolePage.companies(context, &view)
        case "company": try await ConsolePage.company(context, company: try ReportAPI.pathValue(subject), &view)
        case "pipeline": try await ConsolePage.pipeline(context, csrf: csrf, &view)
        case "live": ConsolePage.live(context, &view)
        default: throw APIRefusal(.notFound, .notFound, "no console page \(name)")
        }
    }

    /// Pages whose period is all time unless the URL says otherwise.
    static let allTimePages: Set<String> = ["companies", "engagement", "company"]

    /// The 30 days up to the app's newest event (by the rollup's hours), as dates: data that is
    /// months old still shows when the console opens.
    func defaultPeriod(_ token: String) async throws -> (since: String, until: String) {
        let row = try await runner.withConnection { connection in
            try connection.execute(
                """
                SELECT to_char(d - 29, 'YYYY-MM-DD') AS since, to_char(d + 1, 'YYYY-MM-DD') AS until
                FROM (SELECT COALESCE((SELECT max(hour) FROM rollup_event_counts WHERE app_token = $1), now())::date AS d) AS newest
                """,
                [token]
            ).firstRow
        }
        return (row?["since"] ?? "30d", row?["until"] ?? Timestamp.now().description)
    }

    // MARK: Dead letters

    func replay(_ request: Request, app rawApp: String) async throws -> Response {
        let app = try ReportAPI.pathValue(rawApp)
        let reader: Reader
        let csrf: String
        switch try await session(request, app: app) {
        case .reader(let found, let token): (reader, csrf) = (found, token)
        case .answer(let response): return response
        }
        try Self.requireSameOrigin(request)
        let form = try await Self.form(request)
        guard let token = try form.single("csrf"), keys.sessions.constantTimeEqual(token, csrf) else {
            throw APIRefusal(.forbidden, .invalidCSRFToken, "the form's CSRF token does not match this session; reload the page and try again")
        }
        let writeKey = try form.single("write_key") ?? ""
        let owner = try await runner.withConnection { connection in
            try connection.execute("SELECT token FROM apps WHERE write_key_hash = $1", [WriteKey.hash(writeKey)]).firstRow?["token"]
        }
        var view = PageView(title: "Pipeline", app: AppView(name: reader.name, csrf: csrf))
        view.nav = Self.pages.map { LinkView(label: $0.label, href: "/apps/\(Self.encode(reader.name))/\($0.path)", current: $0.path == "pipeline") }
        let context = PageContext(console: self, reader: reader, app: reader.name, query: QueryParameters(pairs: []), path: request.uri.path)
        var status = HTTPResponse.Status.ok
        if writeKey.isEmpty || owner != reader.token {
            view.error = "That is not this app's write key: replaying dead letters sends events, so it takes the write key."
            status = .forbidden
        } else {
            do {
                let result = try await limiter.run(app: reader.token) {
                    try await services.ingest.call(IngestDeadLettersReplay.self, .init(app: reader.token))
                }
                view.message =
                    "Replayed \(TableText.cell(result["replayed"])) dead letters: \(TableText.cell(result["accepted"])) accepted, "
                    + "\(TableText.cell(result["duplicates"])) duplicates, \(TableText.cell(result["still_rejected"])) still refused (listed below)."
            } catch {
                view.error = "The replay failed: \(APIRefusal.from(error).message)"
                status = .serviceUnavailable
            }
        }
        try? await ConsolePage.pipeline(context, csrf: csrf, &view)
        return render("page", view, status: status)
    }

    // MARK: Rendering

    func render(_ template: String, _ value: Any, status: HTTPResponse.Status) -> Response {
        var html = library.render(value, withTemplate: template) ?? "template \(template) is missing"
        // Mustache escapes markup, not control characters, and values a client chose (event
        // names, dead letters) may hold them: they become U+FFFD, as in charts.
        if html.unicodeScalars.contains(where: Self.isControl) {
            html = String(String.UnicodeScalarView(html.unicodeScalars.map { Self.isControl($0) ? "\u{FFFD}" : $0 }))
        }
        return Response(status: status, headers: Self.pageHeaders, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    /// Controls other than tab, newline and carriage return: none belongs in a page.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\t" && scalar != "\n" && scalar != "\r") || scalar.value == 0x7F
    }

    /// Pages load nothing from elsewhere and no inline script or style: a strict policy holds.
    static let pageHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8",
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "same-origin",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        .cacheControl: "no-store",
    ]

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// A form post's fields (`application/x-www-form-urlencoded`, at most 64 KB).
    static func form(_ request: Request) async throws -> QueryParameters {
        var body = try await request.body.collect(upTo: 65_536)
        return try QueryParameters(query: body.readString(length: body.readableBytes))
    }

    /// Percent-encodes everything but unreserved characters.
    static func encode(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                encoded.unicodeScalars.append(UnicodeScalar(byte))
            default:
                encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return encoded
    }

    static func encode(_ pairs: [(name: String, value: String)]) -> String {
        pairs.map { encode($0.name) + "=" + encode($0.value) }.joined(separator: "&")
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// The clients of the other services the pipeline page and the replay ask.
struct ServiceClients: Sendable {
    let supervisor: ReconnectingClient
    let ingest: ReconnectingClient
    let identity: ReconnectingClient
    let export: ReconnectingClient
}
