import CLibPQ
import CairnCore
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// PostgreSQL's `LISTEN`/`NOTIFY` as doorbells: followers sleep until a commit that concerns
/// them instead of polling the database.
///
/// One connection per process listens on a dedicated thread that blocks in `poll(2)` on the
/// connection's socket and a wake pipe, so an idle stack spends no CPU here. When the
/// connection is down every doorbell rings (so waiters look once) and ``isListening`` turns
/// false, and waiters fall back to polling at their own interval until it is back.
public final class PostgresNotifications: Service, Sendable {
    /// A doorbell and the notifications that ring it.
    private struct Subscription {
        var channels: Set<String>
        /// Only notifications with this payload; nil for every payload.
        var payload: String?
        var bell: Doorbell
    }

    public let conninfo: String
    private let channels: [String]
    private let logger: Logger
    private let subscriptions = Mutex<[Subscription]>([])
    private let listening = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// Written to once on ``stop()``; the listening thread polls it beside the socket.
    private let wakePipe: (read: Int32, write: Int32)

    /// How long a waiter sleeps between looks while notifications work: a safety net for a
    /// commit nobody announced, not the way work is found.
    public static let idleLook: Duration = .seconds(30)

    public init(conninfo: String, channels: [String], logger: Logger) {
        self.conninfo = conninfo
        self.channels = channels
        self.logger = logger
        var descriptors: [Int32] = [-1, -1]
        if pipe(&descriptors) == 0 {
            _ = fcntl(descriptors[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(descriptors[1], F_SETFD, FD_CLOEXEC)
        }
        wakePipe = (descriptors[0], descriptors[1])
    }

    deinit {
        if wakePipe.read >= 0 { close(wakePipe.read) }
        if wakePipe.write >= 0 { close(wakePipe.write) }
    }

    /// Whether notifications are being received now.
    public var isListening: Bool { listening.load(ordering: .acquiring) }

    /// How long to wait for a doorbell before looking anyway: `poll` while notifications are
    /// down, ``idleLook`` while they work.
    public func timeout(poll: Duration) -> Duration {
        isListening ? max(poll, Self.idleLook) : poll
    }

    /// A doorbell rung by every notification on `channels` (with `payload`, when given), and
    /// whenever the listening connection is lost or (re)established.
    public func doorbell(channels: Set<String>, payload: String? = nil) -> Doorbell {
        let bell = Doorbell()
        subscriptions.withLock { $0.append(Subscription(channels: channels, payload: payload, bell: bell)) }
        return bell
    }

    /// Listens until ``stop()``, cancellation or graceful shutdown, reconnecting with a backoff.
    public func run() async throws {
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        await cancelWhenGracefulShutdown {
            await withTaskCancellationHandler {
                try? await thread.runIfActive { [self] in listen() }
            } onCancel: {
                self.stop()
            }
        }
        try? await thread.shutdownGracefully()
    }

    /// Ends ``run()``: its thread leaves `poll(2)` at once.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    private func listen() {
        var backoff = 100
        var lastProblem: String?
        while !stopped.load(ordering: .acquiring) {
            do {
                let connection = try PostgresConnection(conninfo: conninfo)
                for channel in channels { try connection.execute("LISTEN \(channel)") }
                listening.store(true, ordering: .releasing)
                if lastProblem != nil { logger.info("notifications resumed") }
                lastProblem = nil
                backoff = 100
                ringAll()  // whatever committed while nobody listened
                try connection.awaitNotifications(until: wakePipe.read) { channel, payload in ring(channel, payload) }
            } catch {
                let problem = "\(error)"
                if problem != lastProblem {
                    logger.warning("notifications unavailable; followers poll until they return", metadata: ["error": "\(problem)"])
                    lastProblem = problem
                }
            }
            listening.store(false, ordering: .releasing)
            ringAll()
            if stopped.load(ordering: .acquiring) { break }
            var descriptor = pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, Int32(backoff))
            backoff = min(backoff * 2, 5000)
        }
    }

    private func ring(_ channel: String, _ payload: String) {
        let bells = subscriptions.withLock { list in
            list.filter { $0.channels.contains(channel) && ($0.payload == nil || $0.payload == payload) }.map(\.bell)
        }
        for bell in bells { bell.ring() }
    }

    private func ringAll() {
        for bell in subscriptions.withLock({ $0.map(\.bell) }) { bell.ring() }
    }
}

extension PostgresConnection {
    /// Hands each notification to `deliver` until `descriptor` becomes readable; blocks in
    /// `poll(2)` meanwhile. Throws when the connection breaks.
    func awaitNotifications(until descriptor: Int32, _ deliver: (_ channel: String, _ payload: String) -> Void) throws(PostgresError) {
        let socket = PQsocket(handle)
        guard socket >= 0 else { throw PostgresError(.unavailable, "the notification connection has no socket") }
        while true {
            var descriptors = [
                pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
                pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
            ]
            if poll(&descriptors, 2, -1) < 0 {
                if errno == EINTR { continue }
                throw PostgresError(.unavailable, "poll failed: errno \(errno)")
            }
            if descriptors[1].revents != 0 { return }
            guard PQconsumeInput(handle) != 0, PQstatus(handle) == CONNECTION_OK else {
                throw PostgresError(.unavailable, "the notification connection broke: \(String(cString: PQerrorMessage(handle)))")
            }
            while let notification = PQnotifies(handle) {
                deliver(String(cString: notification.pointee.relname), String(cString: notification.pointee.extra))
                PQfreemem(notification)
            }
        }
    }
}

/// How a follower that has caught up waits for more: until a commit is announced, except that
/// after each announcement it looks once more at its poll interval, because a commit can stay
/// hidden for a moment behind an older transaction (the log's horizon).
public struct CommitWait: Sendable {
    public let bell: Doorbell
    let notifications: PostgresNotifications
    private var settling = true

    public init(bell: Doorbell, notifications: PostgresNotifications) {
        self.bell = bell
        self.notifications = notifications
    }

    /// Read before looking for work; handed to ``idle(after:poll:)`` when the look found none.
    public var rings: UInt64 { bell.rings }

    /// Sleeps after a look that found nothing: `poll` when the last wake was a ring, else until
    /// the next ring (or, with notifications down, `poll`).
    public mutating func idle(after seen: UInt64, poll: Duration) async {
        if settling {
            try? await Task.sleep(for: poll)
            settling = false
        } else {
            settling = await bell.wait(after: seen, timeout: notifications.timeout(poll: poll))
        }
    }
}
