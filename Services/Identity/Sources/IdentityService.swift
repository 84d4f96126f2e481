import CairnCore
import CairnMethods
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
        let storage = ReconnectingClient(
            socketPath: context.environment.socketPath(of: "storage"),
            maximumFrameSize: context.environment.maximumFrameSize
        )
        let counters = context.counters
        let maximumFrameSize = context.environment.maximumFrameSize - 1024
        let cache = SessionCache()
        // Several ingest instances may forward at once; each batch plans from the sessions the
        // one before it committed, so batches go through one at a time.
        let gate = SerialGate()
        var router = RPCRouter()
        router.register(IdentityProcess.self) { params in
            let events = params.events
            return try await gate.run {
                var batch = IdentityBatch()
                for event in events { batch.add(event) }
                let users = batch.userRows()
                let companies = batch.companyRows()
                let plan: SessionPlan
                let result: StorageWrite.Result
                do {
                    plan = try await SessionPlan.make(events: events, aliases: batch.aliasRows(), cache: cache, storage: storage)
                    let write = JSON.object([
                        "events": .array(events), "users": users, "companies": companies,
                        "memberships": batch.membershipRows(), "aliases": batch.aliasRows(), "sessions": plan.rows,
                    ]).serialized()
                    // The events with their identity rows can outgrow one frame (long ids, many
                    // people); ingest then halves the batch, as it does for a refused one.
                    guard write.count < maximumFrameSize else {
                        throw IdentityError(
                            .batchTooLarge,
                            "the batch's \(events.count) events and their identity rows are \(write.count) bytes, over the \(maximumFrameSize)-byte frame limit"
                        )
                    }
                    // The gate waits for this answer: the call's deadline bounds how long it is held.
                    result = try await storage.call(StorageWrite.self, rawParams: write)
                } catch  where RPCError(converting: error) != nil {
                    throw error  // storage's answer, or identity's own batch_too_large
                } catch {
                    throw IdentityError(.storageUnavailable, "storage service unreachable: \(error)")
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
        }
        // After a merge or an erasure in storage: forget what changed, and recompute the
        // sessions of the persons that remain from their stored history.
        router.register(IdentityRefresh.self) { params in
            let app = params.app_token
            let persons = params.persons ?? []
            let forget = params.forget ?? []
            return try await gate.run {
                cache.commit(app: app, [:], forget: persons + forget)
                guard !persons.isEmpty || !forget.isEmpty else { return IdentityRefresh.Result(persons: 0) }
                let context = try await storage.call(IdentityContextMethod.self, .init(app_token: app, user_ids: persons))
                let sessionizer = Sessionizer(
                    inactivity: .seconds(context["inactivity_s"]?.intValue ?? 1800),
                    maximumLength: .seconds(context["max_length_s"]?.intValue ?? 86400)
                )
                var rows: [JSON] = forget.map { ["app_token": .string(app), "person": .string($0), "sessions": .array([])] }
                var histories: [String: SessionHistory] = [:]
                for person in persons {
                    let history = SessionHistory(
                        points: (context["histories"]?[person]?.arrayValue ?? []).compactMap(\.intValue).map(Sessionizer.Point.init(packed:))
                    )
                    histories[person] = history
                    rows.append([
                        "app_token": .string(app), "person": .string(person),
                        "sessions": .array(sessionizer.sessions(of: history.points).map(\.json)),
                    ])
                }
                _ = try await storage.call(StorageWrite.self, .init(events: [], sessions: .array(rows)))
                cache.commit(app: app, histories, forget: [])
                return IdentityRefresh.Result(persons: rows.count)
            }
        }
        return ServiceParts(router: router)
    }
}
