import CairnCore
import Foundation
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import Synchronization

/// Where e-mail triggers send (docs/triggers.md, "E-mail"): the export service's
/// `settings.smtp` in the stack file, each key overridable by `CAIRN_SMTP_*`; the credentials
/// come only from the environment (`CAIRN_SMTP_USERNAME`, `CAIRN_SMTP_PASSWORD`).
public struct SMTPSettings: Sendable, Equatable {
    /// How the connection is protected.
    public enum Security: String, Sendable, CaseIterable {
        /// Plain TCP upgraded with `STARTTLS` before anything else is said (port 587). A server
        /// that does not offer it is not spoken to: there is no fallback to plain text.
        case starttls
        /// TLS from the first byte (port 465).
        case tls
        /// Plain TCP, for a relay on this machine or a test server.
        case none
    }

    public var host: String
    public var port: Int
    public var security: Security
    /// The `From` header as given (`Shop <shop@example.com>`), and its address for `MAIL FROM`.
    public var from: String
    public var fromAddress: String
    public var username: String?
    public var password: String?
    /// A PEM file of certificates to trust besides the system's (a private relay's own CA).
    public var caFile: String?
    /// The name this client gives in `EHLO`.
    public var heloName: String
    /// How long the server may take to answer any one command.
    public var commandTimeout: Duration = .seconds(30)

    /// The settings, or nil when no host is configured (e-mail triggers are then refused).
    public static func parse(settings: JSONObject, environment: [String: String]) throws(ExportError) -> SMTPSettings? {
        var given: [String: String] = [:]
        if let value = settings["smtp"] {
            guard case .object(let object) = value else {
                throw ExportError(.configuration, "settings.smtp must be an object {host, port, security, from, ca_file, helo}")
            }
            for (key, value) in object {
                guard ["host", "port", "security", "from", "ca_file", "helo"].contains(key) else {
                    throw ExportError(
                        .configuration,
                        "settings.smtp.\(key) is not a setting; it takes host, port, security, from, ca_file and helo (credentials come from CAIRN_SMTP_USERNAME and CAIRN_SMTP_PASSWORD)"
                    )
                }
                switch value {
                case .string(let text): given[key] = text
                case .int(let number): given[key] = String(number)
                default: throw ExportError(.configuration, "settings.smtp.\(key) must be a string or a number")
                }
            }
        }
        for key in ["host", "port", "security", "from", "ca_file", "helo"] {
            if let value = environment["CAIRN_SMTP_" + key.uppercased()], !value.isEmpty { given[key] = value }
        }
        guard let host = given["host"], !host.isEmpty else { return nil }
        func refuse(_ key: String, _ reason: String) -> ExportError {
            ExportError(.configuration, "SMTP \(key) (settings.smtp.\(key) or CAIRN_SMTP_\(key.uppercased())) \(reason)")
        }
        guard host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" && $0 != "@" }) else {
            throw refuse("host", "must be a host name or address; found '\(host)'")
        }
        let security: Security
        if let text = given["security"] {
            guard let value = Security(rawValue: text.lowercased()) else {
                throw refuse("security", "must be starttls, tls or none; found '\(text)'")
            }
            security = value
        } else {
            security = given["port"] == "465" ? .tls : .starttls
        }
        let port: Int
        if let text = given["port"] {
            guard let number = Int(text), (1...65535).contains(number) else { throw refuse("port", "must be a port number; found '\(text)'") }
            port = number
        } else {
            port = security == .tls ? 465 : security == .starttls ? 587 : 25
        }
        guard let from = given["from"], !from.isEmpty else {
            throw refuse("from", "is required: the sender of every message, e.g. 'Shop <shop@example.com>'")
        }
        guard let fromAddress = EmailAddress.mailbox(in: from) else {
            throw refuse("from", "must be one address, 'name@example.com' or 'Name <name@example.com>'; found '\(from)'")
        }
        let username = environment["CAIRN_SMTP_USERNAME"].flatMap { $0.isEmpty ? nil : $0 }
        let password = environment["CAIRN_SMTP_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        guard (username == nil) == (password == nil) else {
            throw ExportError(.configuration, "CAIRN_SMTP_USERNAME and CAIRN_SMTP_PASSWORD go together")
        }
        if username != nil, security == .none, !["localhost", "127.0.0.1", "::1"].contains(host) {
            throw refuse("security", "is none, so the credentials would cross the network in clear; use starttls or tls")
        }
        if let helo = given["helo"], helo.isEmpty || !helo.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) || helo.utf8.count > 255 {
            throw refuse("helo", "must be one host name; found '\(helo)'")
        }
        if let file = given["ca_file"], !FileManager.default.isReadableFile(atPath: file) {
            throw refuse("ca_file", "'\(file)' cannot be read")
        }
        var hostName = [CChar](repeating: 0, count: 256)
        let machine = gethostname(&hostName, 255) == 0 ? String(cString: hostName) : "localhost"
        return SMTPSettings(
            host: host,
            port: port,
            security: security,
            from: from,
            fromAddress: fromAddress,
            username: username,
            password: password,
            caFile: given["ca_file"],
            heloName: given["helo"] ?? (machine.isEmpty ? "localhost" : machine)
        )
    }

    /// The TLS context for `starttls` and `tls`: the system's roots, plus `ca_file`'s.
    func tlsContext() throws -> NIOSSLContext? {
        guard security != .none else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile { configuration.additionalTrustRoots = [.file(caFile)] }
        return try NIOSSLContext(configuration: configuration)
    }
}

/// E-mail addresses as the trigger checks them before a message is composed.
enum EmailAddress {
    /// The address in `text` (`a@b.c` or `Name <a@b.c>`), or nil when it is not exactly one
    /// plausible address. Nothing that could end a header or an SMTP command gets through.
    static func mailbox(in text: String) -> String? {
        var candidate = text.trimmingCharacters(in: .whitespaces)
        if candidate.hasSuffix(">"), let open = candidate.lastIndex(of: "<") {
            candidate = String(candidate[candidate.index(after: open)..<candidate.index(before: candidate.endIndex)])
        }
        return isAddress(candidate) ? candidate : nil
    }

    /// One `local@domain`, at most 254 bytes, printable ASCII (no SMTPUTF8), without spaces,
    /// angle brackets, commas or quotes.
    static func isAddress(_ text: String) -> Bool {
        guard text.utf8.count <= 254, text.utf8.count >= 3, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return false }
        let forbidden: Set<Character> = ["<", ">", ",", ";", "\"", "(", ")", "[", "]", "\\", ":"]
        guard text.allSatisfy({ !$0.isWhitespace && !$0.isNewline && !forbidden.contains($0) && $0.unicodeScalars.allSatisfy { $0.value >= 0x21 } })
        else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64 else { return false }
        let domain = parts[1]
        guard domain.contains("."), !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.contains("..") else { return false }
        return true
    }
}

/// An SMTP exchange that did not end in the server taking the message.
struct SMTPFailure: Error, CustomStringConvertible {
    /// The server's reply code, or nil for a network failure or a timeout.
    var code: Int?
    var message: String
    /// A 5xx reply, or a problem resending cannot fix: parked at once, not retried.
    var permanent: Bool
    /// `message` holds the server's own words (its reply, or what it sent instead of one).
    var quotesServer = false

    var description: String { code.map { "SMTP \($0) \(message)" } ?? message }

    static func network(_ message: String) -> SMTPFailure { SMTPFailure(code: nil, message: message, permanent: false) }
}

/// One connection to an SMTP server (RFC 5321), spoken one command at a time.
final class SMTPSession: Sendable {
    private let channel: any Channel
    fileprivate let inbox: ReplyInbox
    private let timeout: Duration
    /// The extensions `EHLO` listed (upper-cased keywords with their parameters).
    private let extensions = Mutex<[String]>([])

    private init(channel: any Channel, inbox: ReplyInbox, timeout: Duration) {
        self.channel = channel
        self.inbox = inbox
        self.timeout = timeout
    }

    /// Connects, reads the greeting, says `EHLO`, secures the connection as `settings` say
    /// and logs in when credentials are set.
    static func open(_ settings: SMTPSettings, tls: NIOSSLContext?) async throws(SMTPFailure) -> SMTPSession {
        let inbox = ReplyInbox()
        let channel: any Channel
        do {
            let implicit = settings.security == .tls ? tls : nil
            let serverName = Self.serverName(settings.host)
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(Int64(settings.commandTimeout.components.seconds)))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let implicit {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: implicit, serverHostname: serverName))
                        }
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(SMTPLineDecoder()), name: SMTPLineDecoder.name)
                        try channel.pipeline.syncOperations.addHandler(ReplyLineHandler(inbox: inbox))
                    }
                }
                .connect(host: settings.host, port: settings.port)
                .get()
        } catch {
            throw .network("cannot connect to \(settings.host):\(settings.port): \(error)")
        }
        let session = SMTPSession(channel: channel, inbox: inbox, timeout: settings.commandTimeout)
        do throws(SMTPFailure) {
            _ = try await session.reply(expecting: 220)
            try await session.hello(settings.heloName)
            if settings.security == .starttls {
                guard session.offers("STARTTLS"), let tls else {
                    throw SMTPFailure(
                        code: nil,
                        message:
                            "\(settings.host):\(settings.port) does not offer STARTTLS; set security to tls (port 465) or, for a local relay, none",
                        permanent: false
                    )
                }
                _ = try await session.command("STARTTLS", expecting: 220)
                let serverName = Self.serverName(settings.host)
                do {
                    // What the server sent in clear after its 220 must not be read as an answer
                    // given over TLS: the old decoder hands any bytes it holds on, and they fail the session.
                    try await channel.eventLoop.submit {
                        let pipeline = channel.pipeline.syncOperations
                        let decoder = try pipeline.context(name: SMTPLineDecoder.name)
                        pipeline.removeHandler(context: decoder, promise: nil)
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: serverName)
                        try pipeline.addHandler(handler, position: .first)
                        try pipeline.addHandler(ByteToMessageHandler(SMTPLineDecoder()), name: SMTPLineDecoder.name, position: .after(handler))
                    }.get()
                } catch {
                    throw SMTPFailure.network("STARTTLS failed: \(error)")
                }
                guard session.inbox.isEmpty else {
                    throw SMTPFailure(
                        code: nil,
                        message: "the server sent more after its answer to STARTTLS, in clear; refused (an injection)",
                        permanent: false
                    )
                }
                try await session.hello(settings.heloName)
            }
            if let username = settings.username, let password = settings.password {
                try await session.logIn(username: username, password: password)
            }
            return session
        } catch {
            session.close()
            throw error
        }
    }

    /// SNI and certificate checks want a name; an address literal is checked as an address.
    private static func serverName(_ host: String) -> String? {
        host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : host
    }

    private func hello(_ name: String) async throws(SMTPFailure) {
        let reply = try await command("EHLO \(name)", expecting: 250)
        extensions.withLock { $0 = reply.lines.dropFirst().map { $0.uppercased() } }
    }

    private func offers(_ keyword: String) -> Bool {
        extensions.withLock { list in list.contains { $0 == keyword || $0.hasPrefix(keyword + " ") } }
    }

    /// `AUTH PLAIN`, or `AUTH LOGIN` for a server that offers only that. The credentials are
    /// never part of an error: a server may echo what it was sent, cut, split across lines or
    /// re-encoded, so its words during the login are never kept, only its reply code.
    private func logIn(username: String, password: String) async throws(SMTPFailure) {
        let mechanisms = extensions.withLock { list in
            list.first { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }.map { $0.dropFirst(5).split(separator: " ").map(String.init) } ?? []
        }
        do throws(SMTPFailure) {
            if mechanisms.contains("PLAIN") || !mechanisms.contains("LOGIN") {
                let token = Data(([0] + Array(username.utf8) + [0] + Array(password.utf8))).base64EncodedString()
                _ = try await command("AUTH PLAIN " + token, expecting: 235, echo: "AUTH PLAIN")
            } else {
                _ = try await command("AUTH LOGIN", expecting: 334)
                _ = try await command(Data(username.utf8).base64EncodedString(), expecting: 334, echo: "(username)")
                _ = try await command(Data(password.utf8).base64EncodedString(), expecting: 235, echo: "(password)")
            }
        } catch {
            let detail = error.quotesServer ? "the server's words are not kept, as they may repeat the credentials" : error.message
            throw SMTPFailure(code: error.code, message: "login refused (\(detail))", permanent: error.permanent)
        }
    }

    /// Sends `message` from `from` to `to`, all but its end; `beforeEnd` runs once the server
    /// holds the whole message and before the end of data is sent, so that the caller can
    /// record the send first. When `beforeEnd` throws, the connection closes and the server,
    /// never having seen the end, discards the message.
    ///
    /// - Returns: true when the server accepted it; false when the end of data was sent but its
    ///   answer was lost (it was most likely delivered).
    func send(
        _ message: [UInt8],
        from: String,
        to: String,
        beforeEnd: () async throws -> Void
    ) async throws -> Bool {
        // Errors name the command, not the address: they are stored with parked deliveries and logged.
        _ = try await command("MAIL FROM:<\(from)>", expecting: 250, echo: "MAIL FROM")
        _ = try await command("RCPT TO:<\(to)>", expecting: 250...251, echo: "RCPT TO")
        _ = try await command("DATA", expecting: 354)
        try await write(Self.dotStuffed(message))
        // A server gone during the data never gets the end: the message is not marked sent.
        guard channel.isActive, inbox.isEmpty, !inbox.hasFailed else {
            close()
            throw SMTPFailure.network("the connection ended while the message was being sent")
        }
        do {
            try await beforeEnd()
        } catch {
            close()
            throw error
        }
        // A write that fails never handed the end to the network: not sent, and the caller takes the mark back.
        try await write(Array(".\r\n".utf8))
        do throws(SMTPFailure) {
            _ = try await reply(expecting: 250)
        } catch {
            // A refusal is an answer: the message was not taken. A lost answer is not.
            if error.code != nil { throw error }
            return false
        }
        return true
    }

    func quit() async {
        _ = try? await command("QUIT", expecting: 221)
        close()
    }

    func close() {
        channel.close(promise: nil)
    }

    // MARK: - Lines

    struct Reply {
        var code: Int
        var lines: [String]
    }

    /// - Parameter echo: what an error shows of the command (never a credential).
    private func command(_ line: String, expecting expected: ClosedRange<Int>, echo: String? = nil) async throws(SMTPFailure) -> Reply {
        try await write(Array((line + "\r\n").utf8))
        do throws(SMTPFailure) {
            return try await reply(expecting: expected)
        } catch {
            throw SMTPFailure(
                code: error.code,
                message: "\(echo ?? line): \(error.message)",
                permanent: error.permanent,
                quotesServer: error.quotesServer
            )
        }
    }

    private func command(_ line: String, expecting code: Int, echo: String? = nil) async throws(SMTPFailure) -> Reply {
        try await command(line, expecting: code...code, echo: echo)
    }

    /// Writes within the command timeout: a server that stops reading has the connection closed.
    private func write(_ bytes: [UInt8]) async throws(SMTPFailure) {
        let channel = self.channel
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
            channel.close(promise: nil)
        }
        defer { deadline.cancel() }
        do {
            try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        } catch {
            throw .network("the connection failed while sending: \(error)")
        }
    }

    private func reply(expecting code: Int) async throws(SMTPFailure) -> Reply {
        try await reply(expecting: code...code)
    }

    /// One reply, its continuation lines (`250-…`) gathered, within the command timeout.
    private func reply(expecting expected: ClosedRange<Int>) async throws(SMTPFailure) -> Reply {
        let inbox = self.inbox
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
            inbox.fail(SMTPFailure.network("no answer within \(self.timeout.components.seconds) s"))
        }
        defer { deadline.cancel() }
        var lines: [String] = []
        while true {
            let line: String
            do {
                line = try await inbox.next()
            } catch let failure as SMTPFailure {
                close()
                throw failure
            } catch {
                close()
                throw .network("the connection failed: \(error)")
            }
            let characters = Array(line.utf8)
            guard characters.count >= 3, let code = Int(String(decoding: characters[0..<3], as: UTF8.self)), lines.count < 200 else {
                close()
                throw SMTPFailure(
                    code: nil,
                    message: "the server's answer is not SMTP: '\(Self.printable(String(line.prefix(120))))'",
                    permanent: false,
                    quotesServer: true
                )
            }
            lines.append(Self.printable(String(String(decoding: characters.dropFirst(4), as: UTF8.self).prefix(300))))
            if characters.count == 3 || characters[3] != UInt8(ascii: "-") {
                guard expected.contains(code) else {
                    close()
                    throw SMTPFailure(
                        code: code,
                        message: String(lines.joined(separator: " ").prefix(1000)),
                        permanent: (500...599).contains(code),
                        quotesServer: true
                    )
                }
                return Reply(code: code, lines: lines)
            }
        }
    }

    /// A server's words as errors show and parked deliveries store them: control characters (a
    /// NUL, which PostgreSQL refuses in text) become `?`.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }

    /// CRLF line ends, and a leading `.` doubled (RFC 5321 4.5.2), ending with CRLF.
    static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 64)
        var lineStart = true
        var previous: UInt8 = 0
        for byte in message {
            if byte == UInt8(ascii: "\n"), previous != UInt8(ascii: "\r") { out.append(UInt8(ascii: "\r")) }
            if lineStart, byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
            out.append(byte)
            lineStart = byte == UInt8(ascii: "\n")
            previous = byte
        }
        if !lineStart { out += [UInt8(ascii: "\r"), UInt8(ascii: "\n")] }
        return out
    }
}

/// The lines a server sends, handed to whoever waits for the next one.
final class ReplyInbox: Sendable {
    private struct State {
        var lines: [String] = []
        var waiter: CheckedContinuation<String, any Error>?
        var failure: (any Error)?
    }

    private let state = Mutex(State())

    func push(_ line: String) {
        let waiter = state.withLock { state -> CheckedContinuation<String, any Error>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.lines.append(line)
            return nil
        }
        waiter?.resume(returning: line)
    }

    /// Every later `next()` fails with `error` once the lines already received are read.
    func fail(_ error: any Error) {
        let waiter = state.withLock { state -> CheckedContinuation<String, any Error>? in
            if state.failure == nil { state.failure = error }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(throwing: error)
    }

    var isEmpty: Bool { state.withLock { $0.lines.isEmpty } }
    var hasFailed: Bool { state.withLock { $0.failure != nil } }

    func next() async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<String, any Error>? = state.withLock { state in
                if !state.lines.isEmpty { return .success(state.lines.removeFirst()) }
                if let failure = state.failure { return .failure(failure) }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// Lines of at most 8 KiB (RFC 5321 allows 512 bytes a reply line): a server that never ends
/// one fails the session instead of growing a buffer.
struct SMTPLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let name = "smtp-lines"
    static let maximumLineBytes = 8192

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > Self.maximumLineBytes { throw SMTPFailure.network("the server sent a line over 8 KiB") }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        guard length <= Self.maximumLineBytes, let line = buffer.readSlice(length: length) else {
            throw SMTPFailure.network("the server sent a line over 8 KiB")
        }
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // What is left when the decoder goes (STARTTLS) or the connection ends is handed on whole.
        if buffer.readableBytes > 0, let rest = buffer.readSlice(length: buffer.readableBytes) {
            context.fireChannelRead(wrapInboundOut(rest))
        }
        return .needMoreData
    }
}

/// Passes each line the server sends to the inbox, and the connection's end as a failure.
final class ReplyLineHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let inbox: ReplyInbox

    init(inbox: ReplyInbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let line = buffer.readString(length: buffer.readableBytes) ?? ""
        inbox.push(line.hasSuffix("\r") ? String(line.dropLast()) : line)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbox.fail(SMTPFailure.network("the connection failed: \(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.fail(SMTPFailure.network("the server closed the connection"))
        context.fireChannelInactive()
    }
}
