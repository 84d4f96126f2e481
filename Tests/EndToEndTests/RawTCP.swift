import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for the HTTP listener's bounds: it connects (from a chosen loopback
/// address, so that tests can be several clients), sends bytes as slowly as it likes, and
/// tells whether the server closed the connection. Blocking calls run on NIO's thread pool.
final class RawTCP: @unchecked Sendable {
    let descriptor: Int32

    /// Connects to `host:port` on loopback, from `source` (any 127.x.y.z) when given.
    init(host: String, port: Int, source: String? = nil) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, source, &local.sin_addr)
            _ = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(descriptor)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { close(descriptor) }

    /// Sends bytes; false when the peer has closed.
    @discardableResult
    func send(_ text: String) async throws -> Bool {
        let bytes = Array(text.utf8)
        return try await NIOThreadPool.singleton.runIfActive {
            bytes.withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
        }
    }

    /// Reads until the peer closes or `limit` passes: true when it closed (what it sent first is in `received`).
    func closedByPeer(within limit: Duration) async throws -> (closed: Bool, received: String) {
        let seconds = limit.components.seconds
        return try await NIOThreadPool.singleton.runIfActive {
            var timeout = timeval(tv_sec: Int(max(1, seconds)), tv_usec: 0)
            setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var received: [UInt8] = []
            let deadline = ContinuousClock.now + limit
            var buffer = [UInt8](repeating: 0, count: 4096)
            while ContinuousClock.now < deadline {
                let count = buffer.withUnsafeMutableBytes { recv(self.descriptor, $0.baseAddress, $0.count, 0) }
                if count == 0 { return (true, String(decoding: received, as: UTF8.self)) }
                if count < 0 {
                    if errno == ECONNRESET { return (true, String(decoding: received, as: UTF8.self)) }
                    continue
                }
                received += buffer[0..<count]
            }
            return (false, String(decoding: received, as: UTF8.self))
        }
    }
}
