import CairnCore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The children a supervisor has running, kept in `<run dir>/children.json` as they start.
///
/// Children stop on their own when their supervisor dies (services watch it; the embedded
/// server gets a parent-death signal), but that takes a moment. A supervisor started in that
/// moment, after one was killed outright, would find the HTTP port and the data directory
/// still held; so it first stops whatever its predecessor left, as the predecessor would have.
/// A recorded pid counts only while the same process holds it (its start time in `/proc`), so
/// a pid reused since is never signalled.
struct ChildRegistry: Sendable {
    let path: String

    struct Record: Sendable, Equatable {
        var name: String
        var pid: pid_t
        var startTime: UInt64
        /// The signal that stops it gracefully (SIGINT for PostgreSQL's fast shutdown).
        var stopSignal: Int32
    }

    init(runDirectory: String) {
        path = runDirectory + "/children.json"
    }

    /// Replaces the record with `children`.
    func write(_ children: [Record]) {
        let rows: [JSON] = children.map {
            [
                "name": .string($0.name), "pid": .int(Int64($0.pid)), "start_time": .int(Int64($0.startTime)),
                "stop_signal": .int(Int64($0.stopSignal)),
            ]
        }
        let temporary = path + ".tmp"
        guard
            FileManager.default.createFile(
                atPath: temporary,
                contents: Data(JSON.array(rows).serialized()),
                attributes: [.posixPermissions: 0o600]
            )
        else { return }
        _ = rename(temporary, path)
    }

    /// The recorded children whose process is still the one recorded.
    func leftovers() -> [Record] {
        guard let data = FileManager.default.contents(atPath: path), let rows = try? JSONParser.parse(Array(data)).arrayValue else { return [] }
        return rows.compactMap { row -> Record? in
            guard let name = row["name"]?.stringValue, let pid = row["pid"]?.intValue, let start = row["start_time"]?.intValue,
                let signal = row["stop_signal"]?.intValue
            else { return nil }
            let record = Record(name: name, pid: pid_t(pid), startTime: UInt64(start), stopSignal: Int32(signal))
            return Self.startTime(of: record.pid) == record.startTime ? record : nil
        }
    }

    /// Stops every leftover child: its graceful signal, then SIGKILL after `deadline`.
    func stopLeftovers(deadline: Duration, logger: Logger) async {
        let leftovers = leftovers()
        guard !leftovers.isEmpty else { return }
        for child in leftovers {
            logger.warning(
                "stopping a service left running by a supervisor that died",
                metadata: ["service": "\(child.name)", "pid": "\(child.pid)"]
            )
            kill(child.pid, child.stopSignal)
        }
        let end = ContinuousClock.now + deadline
        var running = leftovers
        while !running.isEmpty {
            running = running.filter { Self.startTime(of: $0.pid) == $0.startTime }
            if running.isEmpty || ContinuousClock.now >= end { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        for child in running {
            logger.warning("leftover service did not stop in time; killing it", metadata: ["service": "\(child.name)", "pid": "\(child.pid)"])
            kill(child.pid, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
    /// nil when there is no such process (or only its zombie).
    static func startTime(of pid: pid_t) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After the command name: state (field 3), ppid (4), …, starttime (22).
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z" else { return nil }
        return UInt64(fields[19])
    }
}
