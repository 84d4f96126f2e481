import CairnCore
import CairnSQLite
import CairnWire

/// Maps spool failures to the RPC errors clients see. A full disk is `spool_full`, so the
/// sender knows to retry later: nothing was acknowledged.
enum SpoolFailure {
    static func rpcError(_ error: SQLiteError) -> RPCError {
        if error.code == .diskFull {
            return RPCError.application(.spoolFull, "the spool's disk is full; nothing in this request was accepted, retry later")
        }
        return RPCError.application(.spoolUnavailable, "the spool could not store the request (\(error.message)); nothing was accepted, retry later")
    }
}
