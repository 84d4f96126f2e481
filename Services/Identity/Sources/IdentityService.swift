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
/// Sessions are computed here, from each person's whole event history (see ``Sessionizer``),
/// and committed with the batch.
///
/// Resolution here is a lookup, not a rewrite: events are forwarded exactly as they came.
public enum IdentityService {
    public static func setup(_ context: ServiceContext) async throws -> ServiceParts {
        let storage = ReconnectingClient(socketPath: context.environment.socketPath(of: "storage"),
                                         maximumFrameSize: context.environment.maximumFrameSize)
        let counters = context.counters
        let cache = SessionCache()
        var router = RPCRouter()
        router.register("identity.process") { params in
            guard let events = params["events"]?.arrayValue else {
                throw RPCError.invalidParams("params.events must be an array of canonical events")
            }
            var batch = IdentityBatch()
            for event in events { batch.add(event) }
            let users = batch.userRows()
            let companies = batch.companyRows()
            let plan: SessionPlan
            let result: JSON
            do {
                plan = try await SessionPlan.make(events: events, aliases: batch.aliasRows(), cache: cache, storage: storage)
                result = try await storage.call("storage.write", [
                    "events": .array(events), "users": users, "companies": companies,
                    "memberships": batch.membershipRows(), "aliases": batch.aliasRows(), "sessions": plan.rows,
                ])
            } catch let error as RPCError {
                throw error
            } catch {
                throw RPCError.application("storage_unavailable", "storage service unreachable: \(error)")
            }
            // Only what storage committed enters the cache, so a failed write leaves no trace.
            plan.commit(to: cache)
            counters.add("batches")
            counters.add("events", Int64(events.count))
            counters.add("users_seen", Int64(users.arrayValue?.count ?? 0))
            counters.add("companies_seen", Int64(companies.arrayValue?.count ?? 0))
            counters.add("aliases_refused_illegal_id", Int64(batch.refusedAliases))
            counters.add("sessions_recomputed_persons", Int64(plan.rows.arrayValue?.count ?? 0))
            return result
        }
        return ServiceParts(router: router)
    }
}
