import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` in its own process group, so a Ctrl-C at the
/// terminal reaches only the supervisor, which then stops the children in order.
///
/// Its stdout and stderr go through a pipe whose lines are forwarded with a `name | ` prefix.
///
/// One plain thread spawns the child and then waits for it, so that thread lives exactly as
/// long as the child: Linux sends a parent-death signal (`setpriv --pdeathsig`, which the
/// embedded PostgreSQL is started under) when the spawning *thread* ends, not the process.
public final class ChildProcess: Sendable {
    public let name: String
    public let pid: pid_t
    private let ending = Ending()

    /// The wait status once the child has ended, and who is waiting for it.
    private final class Ending: Sendable {
        let state = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signalled(let signal): return "signal \(signal) (\(String(cString: strsignal(signal))))"
            }
        }
    }

    /// Starts `arguments[0]` with `arguments[1...]` and exactly `environment`.
    /// - Parameter output: receives each line the child prints, without the newline.
    public init(
        name: String,
        arguments: [String],
        environment: [String: String],
        output: @escaping @Sendable (String) -> Void
    ) throws(SupervisorError) {
        self.name = name
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SupervisorError(.spawnFailed, "\(name): pipe failed: \(String(cString: strerror(errno)))") }
        let readEnd = fds[0]
        let writeEnd = fds[1]
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)

        let spawned = Mutex<Result<pid_t, SupervisorError>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let ending = self.ending
        Thread.detachNewThread {
            let result = Self.spawn(name: name, arguments: arguments, environment: environment, stdout: writeEnd)
            close(writeEnd)
            spawned.withLock { $0 = result }
            ready.signal()
            guard case .success(let pid) = result else { return }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let waiters = ending.state.withLock { state in
                state.status = status
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        ready.wait()
        switch spawned.withLock({ $0 })! {
        case .success(let childPID):
            pid = childPID
        case .failure(let error):
            close(readEnd)
            throw error
        }
        // Another plain thread reads its output: blocking reads must not occupy one of the
        // two cooperative threads Swift concurrency has on this hardware.
        Thread.detachNewThread {
            Self.forwardLines(from: readEnd, to: output)
        }
    }

    private static func spawn(
        name: String,
        arguments: [String],
        environment: [String: String],
        stdout writeEnd: Int32
    ) -> Result<pid_t, SupervisorError> {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        posix_spawn_file_actions_addclose(&actions, writeEnd)
        closeOnExec()

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var childPID: pid_t = 0
        let status = posix_spawn(&childPID, arguments[0], &actions, &attributes, argv, envp)
        guard status == 0 else {
            return .failure(SupervisorError(.spawnFailed, "\(name): cannot start \(arguments[0]): \(String(cString: strerror(status)))"))
        }
        return .success(childPID)
    }

    /// Marks every descriptor past stderr close-on-exec, so that a child gets nothing else of the
    /// supervisor's: its listening sockets (metrics, `supervisor.sock`) held by children would
    /// outlive it and keep a successor from binding them, and other children's pipes would not
    /// see their end. (glibc's `posix_spawn_file_actions_addclosefrom_np` is not visible to Swift.)
    private static func closeOnExec() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let descriptor = Int32(entry), descriptor > 2 else { continue }
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private static func forwardLines(from descriptor: Int32, to output: @Sendable (String) -> Void) {
        var pending = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            pending.append(contentsOf: buffer[0..<count])
            while let newline = pending.firstIndex(of: 0x0A) {
                output(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
        }
        if !pending.isEmpty { output(String(decoding: pending, as: UTF8.self)) }
        close(descriptor)
    }

    /// Sends `signal` to the child.
    public func send(_ signal: Int32) {
        if ending.state.withLock({ $0.status }) == nil { kill(pid, signal) }
    }

    /// Waits for the child to end.
    public func waitForExit() async -> Termination {
        let status: Int32 = await withCheckedContinuation { continuation in
            let known = ending.state.withLock { state -> Int32? in
                if state.status == nil { state.waiters.append(continuation) }
                return state.status
            }
            if let known { continuation.resume(returning: known) }
        }
        // WIFEXITED / WTERMSIG are macros Swift cannot import.
        if status & 0x7F == 0 { return .exited((status >> 8) & 0xFF) }
        return .signalled(status & 0x7F)
    }
}
