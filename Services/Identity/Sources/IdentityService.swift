import CairnCore
import CairnService
import CairnWire

/// The identity service: sits between ingest and storage, works out which users and
/// companies each batch names, and hands events and identity upserts to storage together,
/// so both commit in one transaction.
///
/// Methods:
/// - `identity.process {events}` → storage's `storage.write` result, once it has committed.
///
/// Resolution here is a lookup, not a rewrite: events are forwarded exactly as they came.
public enum IdentityService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let storage = ReconnectingClient(socketPath: context.environment.socketPath(of: "storage"),
                                         maximumFrameSize: context.environment.maximumFrameSize)
        let counters = context.counters
        var router = RPCRouter()
        router.register("identity.process") { params in
            guard let events = params["events"]?.arrayValue else {
                throw RPCError.invalidParams("params.events must be an array of canonical events")
            }
            var batch = IdentityBatch()
            for event in events { batch.add(event) }
            let users = batch.userRows()
            let companies = batch.companyRows()
            let result: JSON
            do {
                result = try await storage.call("storage.write", [
                    "events": .array(events), "users": users, "companies": companies,
                    "memberships": batch.membershipRows(), "aliases": batch.aliasRows(),
                ])
            } catch let error as RPCError {
                throw error
            } catch {
                throw RPCError.application("storage_unavailable", "storage service unreachable: \(error)")
            }
            counters.add("batches")
            counters.add("events", Int64(events.count))
            counters.add("users_seen", Int64(users.arrayValue?.count ?? 0))
            counters.add("companies_seen", Int64(companies.arrayValue?.count ?? 0))
            counters.add("aliases_refused_illegal_id", Int64(batch.refusedAliases))
            return result
        }
        return ServiceParts(router: router)
    }
}
