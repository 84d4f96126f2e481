import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One supervisor per data directory. A second one started on the same directory would take the
/// first one's children for leftovers of a dead supervisor, stop them and fight it over the
/// embedded PostgreSQL and the spool; it is refused at once instead.
///
/// The lock is `flock` on `<data dir>/supervisor.lock`, held for the process's lifetime: the
/// kernel lets go of it when the supervisor exits, SIGKILL included, so a successor still takes
/// over a dead supervisor's directory. It is opened close-on-exec, so children never hold it.
struct StackLock: Sendable {
    static let fileName = "supervisor.lock"

    /// Never closed: closing it would release the lock.
    let descriptor: Int32

    /// Takes the lock and writes this process's pid into the file, for the refusal message of
    /// the next supervisor.
    /// - Throws: ``SupervisorError`` `already_running` when another live supervisor holds it.
    static func acquire(dataDirectory: String) throws(SupervisorError) -> StackLock {
        let path = dataDirectory + "/" + fileName
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SupervisorError(.lockFailed, "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            close(descriptor)
            guard reason == EWOULDBLOCK else {
                throw SupervisorError(.lockFailed, "cannot lock \(path): \(String(cString: strerror(reason)))")
            }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw SupervisorError(
                .alreadyRunning,
                "another supervisor\(holder.isEmpty ? "" : " (pid \(holder))") runs a stack on \(dataDirectory); stop it first (SIGTERM), or give this one its own --data-dir"
            )
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        return StackLock(descriptor: descriptor)
    }
}
