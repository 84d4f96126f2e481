import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A blocking Unix-socket client for sending arbitrary bytes, so tests can speak the wire
/// protocol wrongly on purpose. Blocking calls run on NIO's thread pool, never on Swift's
/// cooperative threads.
final class RawSocket: @unchecked Sendable {
    let descriptor: Int32

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    func send(_ bytes: [UInt8]) async throws {
        try await NIOThreadPool.singleton.runIfActive {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { throw POSIXError(.EPIPE) }
                offset += sent
            }
        }
    }

    /// Reads one length-prefixed frame; nil when the peer closed the connection first.
    func receiveFrame() async throws -> [UInt8]? {
        try await NIOThreadPool.singleton.runIfActive {
            guard let header = try self.read(4) else { return nil }
            let length = header.reduce(0) { $0 << 8 | Int($1) }
            return try self.read(length)
        }
    }

    /// True once the peer has closed (a read returns end of file).
    func isClosedByPeer() async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { try self.read(1) == nil }
    }

    private func read(_ count: Int) throws -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = bytes[offset...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received == 0 { return nil }
            if received < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { return nil }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            offset += received
        }
        return bytes
    }
}

func frame(_ text: String) -> [UInt8] {
    let body = Array(text.utf8)
    let length = UInt32(body.count)
    return [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
}
