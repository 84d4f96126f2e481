import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension Process {
    /// Waits for the process to exit and returns its status (128 + the signal when a signal
    /// ended it). Foundation's `isRunning` alone once stayed true for ever: the child was a
    /// zombie that Foundation never reaped while many tests started processes at once, and a
    /// test hung. So the child is also reaped here, by its own pid.
    public func waitForExit() async -> Int32 {
        let pid = processIdentifier
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                let signal = status & 0x7F
                return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
            }
            // Foundation reaped it first: its own account stands.
            if reaped == -1, !isRunning { return terminationStatus }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
