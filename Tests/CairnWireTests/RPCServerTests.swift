import CairnCore
import CairnWire
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Starts an echo server on a fresh socket, runs `body`, then stops the server.
func withEchoServer(maximumFrameSize: Int = 1 << 20, _ body: @escaping @Sendable (String) async throws -> Void) async throws {
    let directory = "/tmp/cairn-wire-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try RunDirectory.prepare(directory)
    let path = RunDirectory.socketPath(directory, service: "echo")
    var router = RPCRouter()
    router.register("echo") { params in params }
    router.register("fail") { _ in throw RPCError.application(ErrorCode(rawValue: "nope"), "this always fails") }
    router.register("slow") { params in
        try await Task.sleep(for: .milliseconds(Int(params["ms"]?.intValue ?? 10)))
        return params
    }
    let server = RPCServer(socketPath: path, router: router, maximumFrameSize: maximumFrameSize, logger: Logger(label: "test"))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        // Ready once it answers: the socket file appears at bind, a moment before its mode is set.
        for _ in 0..<500 {
            if (try? await RPCClient.withConnection(socketPath: path, { try await $0.call("echo") })) != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        do {
            try await body(path)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
    }
    rmdir(directory)
}

@Suite struct RPCServerTests {
    @Test func answersCallsAndApplicationErrors() async throws {
        try await withEchoServer { path in
            try await RPCClient.withConnection(socketPath: path) { client in
                let result = try await client.call("echo", ["hello": "world"])
                #expect(result["hello"] == "world")
                do {
                    _ = try await client.call("fail")
                    Issue.record("expected an error")
                } catch let error as RPCError {
                    #expect(error.code == RPCError.applicationErrorCode)
                    #expect(error.applicationCode?.rawValue == "nope")
                }
                do {
                    _ = try await client.call("no.such.method")
                    Issue.record("expected an error")
                } catch let error as RPCError {
                    #expect(error.code == RPCError.methodNotFoundCode)
                }
            }
        }
    }

    @Test func malformedJSONGetsAParseErrorAndTheConnectionLives() async throws {
        try await withEchoServer { path in
            let socket = try RawSocket(path: path)
            try await socket.send(frame("{this is not json"))
            let reply = try #require(try await socket.receiveFrame())
            let response = try JSONParser.parse(reply)
            #expect(response["error"]?["code"] == .int(-32700))
            #expect(response["id"] == .null)
            try await socket.send(frame(#"{"jsonrpc":"2.0","id":2,"method":"echo","params":{"x":1}}"#))
            let second = try JSONParser.parse(try #require(try await socket.receiveFrame()))
            #expect(second["id"] == .int(2))
            #expect(second["result"]?["x"] == .int(1))
        }
    }

    @Test func invalidRequestsAreAnsweredNotFatal() async throws {
        try await withEchoServer { path in
            let socket = try RawSocket(path: path)
            for bad in [
                #"[1,2]"#, #"{"jsonrpc":"1.0","id":1,"method":"echo"}"#, #"{"jsonrpc":"2.0","id":3}"#, #"{"jsonrpc":"2.0","id":{},"method":"echo"}"#,
            ] {
                try await socket.send(frame(bad))
                let response = try JSONParser.parse(try #require(try await socket.receiveFrame()))
                #expect(response["error"]?["code"] == .int(-32600), "for \(bad)")
            }
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withEchoServer { path in
            let socket = try RawSocket(path: path)
            var bytes: [UInt8] = []
            for id in 1...50 {
                bytes += frame(#"{"jsonrpc":"2.0","id":\#(id),"method":"echo","params":{"n":\#(id)}}"#)
            }
            try await socket.send(bytes)
            for id in 1...50 {
                let response = try JSONParser.parse(try #require(try await socket.receiveFrame()))
                #expect(response["id"] == .int(Int64(id)))
                #expect(response["result"]?["n"] == .int(Int64(id)))
            }
        }
    }

    @Test func concurrentCallsOnOneClientAreMatchedById() async throws {
        try await withEchoServer { path in
            try await RPCClient.withConnection(socketPath: path) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 0..<64 {
                        group.addTask {
                            let result = try await client.call("slow", ["ms": .int(Int64(n % 5)), "n": .int(Int64(n))])
                            #expect(result["n"] == .int(Int64(n)))
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }

    @Test func oversizedFrameIsRefusedAndTheConnectionClosed() async throws {
        try await withEchoServer(maximumFrameSize: 1024) { path in
            let socket = try RawSocket(path: path)
            try await socket.send([0, 0x10, 0, 0])  // announces 1 MiB
            let response = try JSONParser.parse(try #require(try await socket.receiveFrame()))
            #expect(response["error"]?["data"]?["code"] == "frame_too_large")
            #expect(try await socket.isClosedByPeer())
            // The server itself is fine.
            let result = try await RPCClient.withConnection(socketPath: path) { try await $0.call("echo", ["ok": true]) }
            #expect(result["ok"] == .bool(true))
        }
    }

    @Test func garbageBytesNeverCrashTheServer() async throws {
        try await withEchoServer(maximumFrameSize: 4096) { path in
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<20 {
                let socket = try RawSocket(path: path)
                let garbage = (0..<Int.random(in: 1...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                try? await socket.send(garbage)
            }
            // A truncated frame followed by a hang-up.
            let truncated = try RawSocket(path: path)
            try await truncated.send([0, 0, 0, 50, 0x7B])
            let result = try await RPCClient.withConnection(socketPath: path) { try await $0.call("echo", ["alive": true]) }
            #expect(result["alive"] == .bool(true))
        }
    }

    @Test func socketIsPrivate() async throws {
        try await withEchoServer { path in
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600)
            let directory = (path as NSString).deletingLastPathComponent
            #expect(stat(directory, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o700)
        }
    }

    @Test func clientFailsPendingCallsWhenTheServerGoesAway() async throws {
        let directory = "/tmp/cairn-wire-gone-\(getpid())"
        try RunDirectory.prepare(directory)
        let path = RunDirectory.socketPath(directory, service: "none")
        await #expect(throws: WireError.self) { _ = try await RPCClient.connect(socketPath: path) }
        rmdir(directory)
    }
}

@Suite struct ShutdownRaceTests {
    /// Connections queued at the listener when the server stops must be closed, not trap.
    @Test func connectionsLeftInTheAcceptQueueAtShutdownDoNotCrash() async throws {
        for _ in 0..<15 {
            try await withEchoServer { path in
                var sockets: [RawSocket] = []
                for _ in 0..<40 { if let socket = try? RawSocket(path: path) { sockets.append(socket) } }
                #expect(!sockets.isEmpty)
            }
        }
    }
}

/// The socket directory is the services' trust boundary: created 0700, and never used when
/// others can write to it.
@Suite struct RunDirectoryTests {
    private func mode(_ path: String) -> mode_t {
        var info = stat()
        _ = stat(path, &info)
        return info.st_mode & 0o7777
    }

    @Test func aNewDirectoryIsPrivate() throws {
        let base = "/tmp/cairn-rundir-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer {
            rmdir(base + "/run")
            rmdir(base)
        }
        try RunDirectory.prepare(base + "/run")
        #expect(mode(base + "/run") == 0o700)
    }

    @Test(arguments: [0o777, 0o770, 0o707, 0o1777] as [mode_t])
    func aDirectoryOthersCanWriteIsRefused(_ unsafe: mode_t) throws {
        let path = "/tmp/cairn-rundir-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { rmdir(path) }
        mkdir(path, 0o700)
        chmod(path, unsafe)
        let error = try #require(throws: WireError.self) { try RunDirectory.prepare(path) }
        #expect(error.code == .runDirectory)
        #expect(error.message.contains("group- or world-writable"))
        #expect(mode(path) == unsafe, "refused, not quietly tightened")
    }

    @Test func anExistingReadableDirectoryIsTightened() throws {
        let path = "/tmp/cairn-rundir-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { rmdir(path) }
        mkdir(path, 0o755)
        chmod(path, 0o755)
        try RunDirectory.prepare(path)
        #expect(mode(path) == 0o700)
    }
}
