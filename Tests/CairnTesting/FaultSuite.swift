import CairnCore
import CairnPostgres
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A fault injected into a running stack while a ``FaultLoader`` pushes events into it.
public enum Fault: String, CaseIterable, Sendable, CustomStringConvertible {
    case killIngest = "SIGKILL ingest"
    case killIdentity = "SIGKILL identity"
    case killStorage = "SIGKILL storage"
    case killExport = "SIGKILL export"
    case killSupervisor = "SIGKILL supervisor"
    case databaseStopped = "PostgreSQL stopped"
    case databaseRestarts = "PostgreSQL restarts"
    case spoolDiskFull = "spool disk full"
    case slowConsumer = "slow consumer"
    case gracefulShutdown = "graceful shutdown"

    public var description: String { rawValue }
    /// A name for files and databases.
    var slug: String { rawValue.lowercased().replacingOccurrences(of: " ", with: "_") }
}

/// How hard each fault is pushed: `make test` runs ``short``, `make faults` ``full``.
public struct FaultProfile: Sendable {
    public var name: String
    public var events: Int
    public var kills: Int
    public var databaseDown: Duration
    public var restarts: Int
    public var diskFull: Duration
    public var soak: Duration
    /// Events per second the loader sends.
    public var rate = 1_000
    /// How long the load lasts.
    var window: Duration { .milliseconds(Int64(events) * 1000 / Int64(rate)) }

    public static let short = FaultProfile(
        name: "short",
        events: 6_000,
        kills: 2,
        databaseDown: .seconds(5),
        restarts: 3,
        diskFull: .seconds(3),
        soak: .seconds(20)
    )
    public static let full = FaultProfile(
        name: "full",
        events: 40_000,
        kills: 5,
        databaseDown: .seconds(30),
        restarts: 8,
        diskFull: .seconds(10),
        soak: .seconds(300)
    )
}

/// What one fault did to the acknowledged set.
public struct FaultResult: Sendable {
    public var fault: Fault
    public var sent = 0
    public var acknowledged = 0
    public var stored = 0
    /// Acknowledged but not stored.
    public var lost = 0
    /// Rows beyond the first for one event.
    public var doubled = 0
    /// Stored but never sent.
    public var extra = 0
    public var recovery: Duration?
    /// What was tried and seen, in order.
    public var findings: [String] = []
    /// Checks besides loss and doubling that failed.
    public var problems: [String] = []

    public var passed: Bool { lost == 0 && doubled == 0 && extra == 0 && acknowledged == sent && problems.isEmpty }

    public init(fault: Fault) {
        self.fault = fault
    }
}

/// What a fault run has found so far; the injection steps add to it as they go.
final class FaultRecord: @unchecked Sendable {
    var result: FaultResult
    private let log: @Sendable (String) -> Void

    init(_ fault: Fault, log: @escaping @Sendable (String) -> Void) {
        result = FaultResult(fault: fault)
        self.log = log
    }

    func note(_ text: String) {
        result.findings.append(text)
        log("\(result.fault): \(text)")
    }

    func problem(_ text: String) {
        result.problems.append(text)
    }

    var recovery: Duration? {
        get { result.recovery }
        set { result.recovery = newValue }
    }
}

/// Runs faults against fresh stacks on one PostgreSQL server that the suite can stop and
/// start (the supervisor's own embedded server for the supervisor fault, whose survival of
/// its parent's death is part of the check). Random moments come from a seeded generator,
/// printed with the results, so a failing run can be repeated.
public final class FaultSuite: @unchecked Sendable {
    public let server: TestServer
    public let profile: FaultProfile
    public let seed: UInt64
    private var random: SplitMix64
    private let log: @Sendable (String) -> Void

    public init(server: TestServer, profile: FaultProfile, seed: UInt64, log: @escaping @Sendable (String) -> Void) {
        self.server = server
        self.profile = profile
        self.seed = seed
        random = SplitMix64(seed: seed)
        self.log = log
    }

    public func run(_ fault: Fault) async throws -> FaultResult {
        let record = FaultRecord(fault, log: log)
        var environment = ["CAIRN_HTTP_ADDR": "127.0.0.1:\(try Self.freePort())"]
        // The supervisor fault uses the embedded server: it must not outlive its supervisor either.
        if fault != .killSupervisor {
            environment["CAIRN_DATABASE_URL"] = try server.freshDatabase("faults_\(fault.slug)_\(UInt32.random(in: 0...UInt32.max))")
        }
        if fault == .slowConsumer { environment["CAIRN_SPOOL_HIGH_WATER_MARK"] = "1500" }
        var mountPoint: String?
        let stack = try await TestStack(
            environment: environment,
            prepare: { data in
                if fault == .spoolDiskFull {
                    let spool = data + "/spool"
                    try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
                    try Self.run(
                        ["/bin/mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", spool],
                        "the disk-full fault needs a small tmpfs for the spool (mount, as root)"
                    )
                    mountPoint = spool
                }
            }
        )
        defer {
            if let mountPoint { _ = try? Self.run(["/bin/umount", "-l", mountPoint], "") }
        }
        do {
            let created = try await stack.cli(["apps", "create", "faults_\(fault.slug)"])
            guard created.status == 0,
                let key = created.stdout.split(separator: "\n").first(where: { $0.hasPrefix("write key:") })?.split(separator: " ").last,
                let token = created.stdout.split(separator: "\n").first(where: { $0.hasPrefix("app token:") })?.split(separator: " ").last
            else {
                throw TestStackError("cannot create the app: \(created.stdout) \(created.stderr)")
            }
            let work = stack.directory + "/loader"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            let events = fault == .slowConsumer ? 10_000_000 : profile.events
            let loader = FaultLoader(
                label: fault.slug,
                app: String(token),
                writeKey: String(key),
                httpURL: try await stack.httpURL(),
                runDirectory: stack.runDirectory,
                workDirectory: work,
                total: events,
                rate: fault == .slowConsumer ? profile.rate * 3 : profile.rate
            )
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await loader.run(deadline: .seconds(600)) }
                try await inject(fault, into: stack, loader: loader, record: record)
                try await group.waitForAll()
            }
            record.note(
                "loader done after \(Self.seconds(ContinuousClock.now - started)) s; refusals seen while retrying: "
                    + (loader.refusals.isEmpty
                        ? "none" : loader.refusals.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
            )
            try await check(loader, in: stack, record: record)
            let status = try await stack.stop(removingFiles: false)
            if status != 0 { record.problem("the supervisor exited \(status) after SIGTERM") }
            if record.result.passed { try? FileManager.default.removeItem(atPath: stack.directory) }
        } catch {
            _ = try? await stack.stop(removingFiles: false)
            throw error
        }
        return record.result
    }

    // MARK: - Injection

    private func inject(_ fault: Fault, into stack: TestStack, loader: FaultLoader, record: FaultRecord) async throws {
        switch fault {
        case .killIngest, .killIdentity, .killStorage, .killExport:
            let service = String(fault.rawValue.dropFirst("SIGKILL ".count))
            var slowest = Duration.zero
            // The kills spread over the load's window, each at a random moment in its share.
            let share = Int(profile.window.components.seconds * 1000) / (profile.kills + 1)
            for kill in 1...profile.kills {
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: share / 2...share * 3 / 2))))
                guard let pid = try await stack.servicePID(service) else { throw TestStackError("\(service) has no pid") }
                Glibc.kill(pid, SIGKILL)
                let at = ContinuousClock.now
                let back = try await waitHealthy(stack, replacing: [service: pid])
                slowest = max(slowest, back - at)
                record.note(
                    "kill \(kill): SIGKILL \(service) (pid \(pid)) with \(loader.acknowledgedCount) acknowledged; restarted and healthy after \(Self.seconds(back - at)) s"
                )
            }
            record.recovery = slowest

        case .killSupervisor:
            try await Task.sleep(for: .milliseconds(Int64(random.next(in: 500...1500))))
            let children = try await childPIDs(stack)
            Glibc.kill(stack.supervisor.processIdentifier, SIGKILL)
            let at = ContinuousClock.now
            record.note(
                "SIGKILL supervisor (pid \(stack.supervisor.processIdentifier)) with \(loader.acknowledgedCount) acknowledged; children \(children.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))"
            )
            // Every child must go by itself: the services watch their parent, PostgreSQL gets a parent-death signal.
            var orphans = children
            let deadline = ContinuousClock.now + .seconds(30)
            while !orphans.isEmpty, ContinuousClock.now < deadline {
                orphans = orphans.filter { Self.isAlive($0.value) }
                try await Task.sleep(for: .milliseconds(100))
            }
            if orphans.isEmpty {
                record.note("every child exited by itself within \(Self.seconds(ContinuousClock.now - at)) s")
            } else {
                record.problem("orphaned after the supervisor died: \(orphans.keys.sorted().joined(separator: ", "))")
                record.note("ORPHANS still running after 30 s: \(orphans)")
            }
            try await Task.sleep(for: .milliseconds(500))
            try await stack.restart()
            record.recovery = ContinuousClock.now - at
            record.note("a new supervisor took over the data directory; stack running \(Self.seconds(ContinuousClock.now - at)) s after the kill")

        case .databaseStopped:
            try await Task.sleep(for: .seconds(1))
            await server.stop()
            record.note("PostgreSQL stopped (fast shutdown) with \(loader.acknowledgedCount) acknowledged")
            let before = loader.acknowledgedCount
            try await Task.sleep(for: profile.databaseDown)
            record.note("acknowledged while the database was down: \(loader.acknowledgedCount - before) events")
            try server.start()
            let at = ContinuousClock.now
            record.recovery = try await waitForCommits(stack, app: loader.app, after: at) - at
            record.note(
                "PostgreSQL started again after \(Self.seconds(profile.databaseDown)) s; storage committed again after \(Self.seconds(record.recovery!)) s"
            )

        case .databaseRestarts:
            var slowest = Duration.zero
            let share = Int(profile.window.components.seconds * 1000) / (profile.restarts + 1)
            for restart in 1...profile.restarts {
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: share / 4...share * 3 / 4))))
                let immediate = restart % 2 == 0
                await server.stop(immediate: immediate)
                try await Task.sleep(for: .milliseconds(Int64(random.next(in: 300...1500))))
                try server.start()
                let at = ContinuousClock.now
                let committed = try await waitForCommits(stack, app: loader.app, after: at)
                slowest = max(slowest, committed - at)
                record.note(
                    "restart \(restart): \(immediate ? "immediate (crash-like)" : "fast") stop and start; committing again after \(Self.seconds(committed - at)) s"
                )
            }
            record.recovery = slowest

        case .spoolDiskFull:
            try await Task.sleep(for: .seconds(1))
            let ballast = stack.directory + "/var/spool/ballast"
            let filled = Self.fill(ballast)
            let refusedBefore = loader.refusals(matching: "spool_full", "503")
            record.note("filled the spool's file system (\(filled / 1024) KiB of ballast) with \(loader.acknowledgedCount) acknowledged")
            let acknowledgedBefore = loader.acknowledgedCount
            try await Task.sleep(for: profile.diskFull)
            let refusals = loader.refusals(matching: "spool_full", "503") - refusedBefore
            record.note("while full: \(loader.acknowledgedCount - acknowledgedBefore) events acknowledged, \(refusals) requests refused")
            if refusals == 0 { record.problem("no request was refused while the spool's disk was full: the fault did not bite") }
            try FileManager.default.removeItem(atPath: ballast)
            let at = ContinuousClock.now
            while loader.firstAcknowledgement(after: at) == nil, loader.acknowledgedCount < loader.sent {
                try await Task.sleep(for: .milliseconds(50))
            }
            record.recovery = (loader.firstAcknowledgement(after: at) ?? .now) - at
            record.note("space returned; next acknowledgement after \(Self.seconds(record.recovery!)) s")

        case .slowConsumer:
            try await soak(stack, loader: loader, record: record)

        case .gracefulShutdown:
            try await Task.sleep(for: .milliseconds(Int64(random.next(in: 800...2000))))
            let depth = try? await stack.call("ingest", "system.status")["spool_depth"]?.intValue
            Glibc.kill(stack.supervisor.processIdentifier, SIGTERM)
            let at = ContinuousClock.now
            try await stack.waitForSupervisorExit(within: .seconds(60))
            let status = stack.supervisor.isRunning ? -1 : stack.supervisor.terminationStatus
            record.note(
                "SIGTERM supervisor under load (spool depth \(depth.map(String.init) ?? "?")); it exited \(status) after \(Self.seconds(ContinuousClock.now - at)) s with \(loader.acknowledgedCount) acknowledged"
            )
            if status != 0 { record.problem("graceful shutdown exited \(status)") }
            try await stack.restart()
            record.recovery = ContinuousClock.now - at
            record.note("restarted; running \(Self.seconds(record.recovery!)) s after the SIGTERM")
        }
    }

    /// A slow consumer: storage is paused most of the time, so the spool reaches its high-water
    /// mark and requests are refused; meanwhile every service's memory is sampled.
    private func soak(_ stack: TestStack, loader: FaultLoader, record: FaultRecord) async throws {
        let pids = try await childPIDs(stack)
        guard let storage = pids["storage"] else { throw TestStackError("storage has no pid") }
        var samples: [String: [Int]] = [:]
        var deepest: Int64 = 0
        let end = ContinuousClock.now + profile.soak
        record.note("storage paused 90% of the time for \(Self.seconds(profile.soak)) s; high-water mark 1,500 events")
        while ContinuousClock.now < end {
            kill(storage, SIGSTOP)
            try await Task.sleep(for: .milliseconds(1800))
            kill(storage, SIGCONT)
            try await Task.sleep(for: .milliseconds(200))
            for (name, pid) in pids { samples[name, default: []].append(Self.residentKiB(pid)) }
            if let depth = try? await stack.call("ingest", "system.status")["spool_depth"]?.intValue { deepest = max(deepest, depth) }
        }
        kill(storage, SIGCONT)
        loader.stopProducing()
        let overloaded = loader.refusals(matching: "429", "overloaded")
        record.note("sent \(loader.sent) events; \(overloaded) requests refused as overloaded; deepest spool \(deepest)")
        if overloaded == 0 { record.problem("backpressure never engaged: no request was refused as overloaded") }
        // Each request may land after the last check: the mark plus the requests in flight.
        if deepest > 1_500 + 5 * Int64(FaultLoader.chunkSize) * 2 { record.problem("the spool grew to \(deepest), far past its high-water mark") }
        for (name, values) in samples.sorted(by: { $0.key < $1.key }) where !values.isEmpty {
            let third = max(1, values.count / 3)
            let early = values.prefix(third).max() ?? 0
            let late = values.suffix(third).max() ?? 0
            let peak = values.max() ?? 0
            record.note("\(name): resident \(early / 1024) MB early, \(late / 1024) MB late, peak \(peak / 1024) MB")
            if peak > 300 * 1024 { record.problem("\(name) peaked at \(peak / 1024) MB resident") }
            if late > early + early / 2 + 32 * 1024 { record.problem("\(name) kept growing: \(early / 1024) MB early, \(late / 1024) MB late") }
        }
    }

    // MARK: - Checks

    /// Waits for the pipeline to drain, then compares what PostgreSQL holds with what was
    /// sent and acknowledged.
    private func check(_ loader: FaultLoader, in stack: TestStack, record: FaultRecord) async throws {
        record.result.sent = loader.sent
        let acknowledged = loader.acknowledgedIds
        record.result.acknowledged = acknowledged.count
        let sent = loader.sentIds
        var rows: [String: Int] = [:]
        let deadline = ContinuousClock.now + .seconds(180)
        while true {
            try? await stack.waitForEmptySpool(timeout: .seconds(5))
            rows = try await Self.storedRows(app: loader.app, database: stack.databaseConninfo)
            if acknowledged.isSubset(of: Set(rows.keys)) || ContinuousClock.now > deadline { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        record.result.stored = rows.count
        record.result.lost = acknowledged.subtracting(rows.keys).count
        record.result.doubled = rows.values.reduce(0) { $0 + max(0, $1 - 1) }
        record.result.extra = Set(rows.keys).subtracting(sent).count
        let dead = try await stack.call("ingest", "system.status")["dead_letters"]?.intValue ?? -1
        record.note(
            "sent \(record.result.sent), acknowledged \(record.result.acknowledged), stored \(record.result.stored): lost \(record.result.lost), doubled \(record.result.doubled), extra \(record.result.extra); dead letters \(dead)"
        )
        if dead != 0 { record.problem("\(dead) events became dead letters") }
    }

    static func storedRows(app: String, database: String) async throws -> [String: Int] {
        let connection = try PostgresConnection(conninfo: database)
        var rows: [String: Int] = [:]
        for row in try connection.execute("SELECT message_id, count(*) FROM events WHERE app_token = $1 GROUP BY 1", [app]).rows {
            if let id = row[0], let count = row[1].flatMap({ Int($0) }) { rows[id] = count }
        }
        return rows
    }

    /// When storage has committed an event of `app` after `instant`.
    private func waitForCommits(_ stack: TestStack, app: String, after instant: ContinuousClock.Instant) async throws -> ContinuousClock.Instant {
        var baseline: Int?
        let deadline = instant + .seconds(120)
        while ContinuousClock.now < deadline {
            if let rows = try? await Self.storedRows(app: app, database: stack.databaseConninfo) {
                let count = rows.values.reduce(0, +)
                if let baseline, count > baseline { return .now }
                if baseline == nil { baseline = count }
                if let depth = try? await stack.call("ingest", "system.status")["spool_depth"]?.intValue, depth == 0, baseline != nil {
                    return .now  // nothing was waiting: committed as soon as it could
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestStackError("storage did not commit again within 120 s:\n\(stack.log.suffix(3000))")
    }

    /// When every service runs again and answers healthy, the listed ones under a new pid.
    private func waitHealthy(_ stack: TestStack, replacing old: [String: pid_t]) async throws -> ContinuousClock.Instant {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let status = try? await stack.call("supervisor", "supervisor.status"), let services = status["services"]?.arrayValue {
                let healthy = services.allSatisfy { service in
                    guard let name = service["name"]?.stringValue else { return false }
                    if name == "postgres" { return service["state"]?.stringValue == "running" }
                    let pid = service["pid"]?.intValue.map { pid_t($0) }
                    return service["status"]?["health"]?.stringValue == "ok" && pid != nil && pid != old[name]
                }
                if healthy { return .now }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestStackError("the stack did not become healthy again within 120 s:\n\(stack.log.suffix(3000))")
    }

    private func childPIDs(_ stack: TestStack) async throws -> [String: pid_t] {
        let status = try await stack.call("supervisor", "supervisor.status")
        var pids: [String: pid_t] = [:]
        for service in status["services"]?.arrayValue ?? [] {
            if let name = service["name"]?.stringValue, let pid = service["pid"]?.intValue { pids[name] = pid_t(pid) }
        }
        return pids
    }

    // MARK: - Output

    /// The results as one table.
    public static func table(_ results: [FaultResult]) -> String {
        let header = ["fault", "sent", "acknowledged", "stored", "lost", "doubled", "recover s", "result"]
        let rows = results.map { result in
            [
                result.fault.rawValue, "\(result.sent)", "\(result.acknowledged)", "\(result.stored)", "\(result.lost)", "\(result.doubled)",
                result.recovery.map(seconds) ?? "-", result.passed ? "ok" : "FAILED",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == 0
                    ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[index] - cell.count) + cell
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    // MARK: - Helpers

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    static func isAlive(_ pid: pid_t) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return false }
        return !text[text.index(after: close)...].hasPrefix(" Z")
    }

    static func residentKiB(_ pid: pid_t) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ")[1]) ?? 0
    }

    /// Writes `path` until the file system is full; returns the bytes written.
    static func fill(_ path: String) -> Int {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        let block = [UInt8](repeating: 0xAB, count: 64 * 1024)
        var total = 0
        while true {
            let written = block.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written <= 0 { break }
            total += written
        }
        fsync(descriptor)
        return total
    }

    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestStackError("socket failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { throw TestStackError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @discardableResult
    static func run(_ arguments: [String], _ purpose: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else { throw TestStackError("\(purpose): \(arguments.joined(separator: " ")) failed: \(output)") }
        return output
    }
}

/// A small seeded generator (SplitMix64), so the random moments of a run can be repeated.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}
