import CairnCore
import CairnSQLite

/// Maps spool failures to the errors clients see. A full disk is `spool_full`, so the
/// sender knows to retry later: nothing was acknowledged.
enum SpoolFailure {
    static func error(_ error: SQLiteError) -> IngestError {
        if error.code == .diskFull {
            return IngestError(.spoolFull, "the spool's disk is full; nothing in this request was accepted, retry later")
        }
        return IngestError(.spoolUnavailable, "the spool could not store the request (\(error.message)); nothing was accepted, retry later")
    }
}
