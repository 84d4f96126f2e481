import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One supervisor per data directory, and per socket directory. A second one started on either
/// would take the first one's children (recorded in the socket directory) for leftovers of a
/// dead supervisor, stop them and fight it over the sockets, the embedded PostgreSQL and the
/// spool; it is refused at once instead.
///
/// The lock is `flock` on `supervisor.lock` in the directory, held for the process's lifetime:
/// the kernel lets go of it when the supervisor exits, SIGKILL included, so a successor still
/// takes over a dead supervisor's directory. It is opened close-on-exec, so children never hold
/// it, and never through a symbolic link.
struct StackLock: Sendable {
    static let fileName = "supervisor.lock"

    /// Never closed: closing it would release the lock.
    let descriptor: Int32

    /// Takes the lock of `directory` (the data or the socket directory, named by `role` in the
    /// refusal) and writes this process's pid into the file, for the next supervisor's refusal.
    /// - Throws: ``SupervisorError`` `already_running` when another live supervisor holds it.
    static func acquire(_ directory: String, role: String) throws(SupervisorError) -> StackLock {
        let path = directory + "/" + fileName
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
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
                "another supervisor\(holder.isEmpty ? "" : " (pid \(holder))") runs a stack with the \(role) \(directory); stop it first (SIGTERM), or give this one its own --data-dir and --run-dir"
            )
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        return StackLock(descriptor: descriptor)
    }
}
