import ArgumentParser
import CairnCore
import CairnMethods
import CairnWire
import Foundation

extension CairnCommand {
    /// `cairn ingest FILE --app APP`: sends a file of records to ingest in batches.
    struct Ingest: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a file of events (JSON lines or a JSON array) to the ingest service.",
            discussion: """
                Each record is validated; good records are acknowledged once durable in the spool, \
                bad ones are reported with their line number and kept as dead letters. \
                Exit status: 0 when every record was accepted, 2 when some were rejected, 1 on failure.
                """
        )

        @Argument(help: "The file to ingest.", completion: .file())
        var file: String

        @Option(name: .long, help: "The app the events belong to.")
        var app: String

        @Option(name: .long, help: "The input format: auto (detect per record), userpilot, userguiding, userlike, usercom or segment.")
        var format: String = "auto"

        @Option(name: .long, help: "Records per request.")
        var batchSize: Int = 1000

        @Option(name: .long, help: "The ingest instance to send to, when the stack runs several (its name in the stack file).")
        var ingest: String = "ingest"

        @OptionGroup var connection: ConnectionOptions

        /// Records are sent in requests of at most this many bytes (as JSON), or one record alone.
        static let batchBytes = 4 << 20
        /// A record larger than this is refused here, before sending.
        static let maximumRecordBytes = 8 << 20
        /// A record that takes more than this written as a JSON string (a control byte takes six
        /// bytes, a record that is not UTF-8 travels in base64) could not travel in one 16 MiB
        /// frame; it is refused here.
        static let maximumEncodedRecordBytes = 12 << 20

        func validate() throws {
            guard batchSize > 0, batchSize <= 50_000 else { throw ValidationError("--batch-size must be between 1 and 50000") }
            guard EventNormalizer.FormatChoice(rawValue: format) != nil else {
                throw ValidationError("--format must be one of \(EventNormalizer.FormatChoice.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        /// How long one request may go on being refused (overload, a full spool, ingest
        /// restarting) before the command gives up.
        static let retryLimit: Duration = .seconds(300)

        func run() async throws {
            let socket = RunDirectory.socketPath(connection.resolvedRunDirectory, service: ingest)
            do {
                try await RPCClient.withConnection(socketPath: socket) { _ in }
            } catch {
                throw CLIError("cannot reach the ingest service '\(ingest)' at \(socket); is the stack running (make run)?")
            }
            let client = ReconnectingClient(socketPath: socket)
            do {
                try await send(with: client)
                await client.close()
            } catch {
                await client.close()
                throw error
            }
        }

        /// Sends one request until ingest takes it. Backpressure (`overloaded`), a full or
        /// failing spool, and a lost connection (ingest restarting) are waited out with backoff,
        /// as an SDK would: a repeat is safe, since ingest deduplicates what it already took.
        private func submit(_ params: IngestSubmit.Params, to client: ReconnectingClient) async throws -> JSON {
            let retryable: Set<ErrorCode> = [.overloaded, .spoolFull, .spoolUnavailable, .storageUnavailable]
            var delay = Duration.milliseconds(100)
            var waited = Duration.zero
            var said: String?
            while true {
                let reason: String
                do {
                    return try await client.call(IngestSubmit.self, params)
                } catch let error as RPCError {
                    guard let code = error.applicationCode, retryable.contains(code) else { throw error }
                    reason = error.message
                } catch {
                    reason = "the connection to ingest failed (\(error))"
                }
                guard waited < Self.retryLimit else {
                    throw CLIError("ingest has not taken a request for \(Self.retryLimit.components.seconds) s: \(reason)")
                }
                if said != reason {
                    printError("ingest: \(reason); retrying")
                    said = reason
                }
                try await Task.sleep(for: delay)
                waited += delay
                delay = min(delay * 2, .seconds(5))
            }
        }

        private func send(with client: ReconnectingClient) async throws {
            var reader = try RecordReader(path: file)
            let started = ContinuousClock.now
            let showProgress = isTerminal(2)
            var accepted: Int64 = 0
            var duplicates: Int64 = 0
            var suppressed: Int64 = 0
            var rejected: Int64 = 0
            var errors: [JSON] = []
            let source = (file as NSString).lastPathComponent
            let maximumInFlight = 4

            // A few requests in flight keep ingest busy while the next batch is read and encoded.
            try await withThrowingTaskGroup(of: JSON.self) { group in
                var inFlight = 0
                func collect(_ result: JSON) {
                    accepted += result["accepted"]?.intValue ?? 0
                    duplicates += result["duplicates"]?.intValue ?? 0
                    suppressed += result["suppressed"]?.intValue ?? 0
                    rejected += result["rejected"]?.intValue ?? 0
                    // Every rejected record is a dead letter; the terminal gets the first hundred.
                    errors += (result["errors"]?.arrayValue ?? []).prefix(max(0, 100 - errors.count))
                    if showProgress {
                        printError("\r\u{1B}[K\(accepted + duplicates + rejected) events, \(rejected) rejected", terminator: "")
                    }
                }
                /// A record read that did not fit the last batch: the first of the next.
                var held: RecordReader.Record?
                while true {
                    var records: [JSON] = []
                    var lines: [Int] = []
                    var invalid: [Int] = []
                    var bytes = 0
                    // A batch stops at a few MiB of JSON, or is one record alone, so that it always
                    // fits the 16 MiB frame.
                    while records.count < batchSize, let record = try held ?? reader.next() {
                        held = nil
                        let size = record.invalidBytes?.count ?? record.text.utf8.count
                        // JSON cannot carry bytes that are not UTF-8: they travel in base64.
                        let sent = record.invalidBytes.map { Data($0).base64EncodedString() } ?? record.text
                        let encoded = JSONWriter.stringByteCount(sent)
                        guard size <= Self.maximumRecordBytes, encoded <= Self.maximumEncodedRecordBytes else {
                            rejected += 1
                            let limit =
                                size > Self.maximumRecordBytes
                                ? "is \(size) bytes; the most one request may carry is \(Self.maximumRecordBytes)"
                                : "is \(encoded) bytes written as a JSON string (\(size) bytes as read); the most one request may carry is \(Self.maximumEncodedRecordBytes)"
                            errors.append(["record": .int(Int64(record.number)), "code": "record_too_large", "error": .string(limit)])
                            continue
                        }
                        if !records.isEmpty, bytes + encoded > Self.batchBytes {
                            held = record
                            break
                        }
                        if record.invalidBytes != nil { invalid.append(record.number) }
                        bytes += encoded
                        records.append(.string(sent))
                        lines.append(record.number)
                    }
                    if records.isEmpty { break }
                    let params = IngestSubmit.Params(app: app, format: format, records: records, lines: lines, source: source, invalid_utf8: invalid)
                    if inFlight == maximumInFlight, let result = try await group.next() {
                        collect(result)
                        inFlight -= 1
                    }
                    group.addTask { try await submit(params, to: client) }
                    inFlight += 1
                }
                for try await result in group { collect(result) }
            }
            if showProgress { printError("") }
            for error in errors.sorted(by: {
                ($0["record"]?.intValue ?? 0, $0["message"]?.intValue ?? -1) < ($1["record"]?.intValue ?? 0, $1["message"]?.intValue ?? -1)
            }) {
                printError("\(file):" + describe(error))
            }
            if rejected > Int64(errors.count) {
                printError("… and \(rejected - Int64(errors.count)) more rejected records (see `cairn deadletters list --app \(app)`)")
            }
            let seconds =
                Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
            let rate = seconds > 0 ? Int(Double(accepted + duplicates + rejected) / seconds) : 0
            let erased = suppressed > 0 ? ", \(suppressed) suppressed (erased users)" : ""
            print(
                "ingested \(file): \(accepted) new, \(duplicates) duplicates\(erased), \(rejected) rejected in \(String(format: "%.2f", seconds)) s (\(rate) events/s)"
            )
            if rejected > 0 { throw ExitCode(2) }
        }
    }
}

/// One rejected record as the CLI prints it: `line[:message]: code: field 'f' error`, the same
/// words ingest sends in the JSON-RPC result and keeps with the dead letter.
func describe(_ error: JSON) -> String {
    let message = error["message"]?.intValue.map { " message \($0)" } ?? ""
    let field = error["field"]?.stringValue.map { " field '\($0)'" } ?? ""
    // Field names and messages quote what the client sent: no terminal escapes reach stderr.
    return TableRenderer.visible(
        "\(error["record"]?.intValue ?? 0):\(message) \(error["code"]?.stringValue ?? "error"):\(field) \(error["error"]?.stringValue ?? "")"
    )
}

func printError(_ text: String, terminator: String) {
    FileHandle.standardError.write(Data((text + terminator).utf8))
}
