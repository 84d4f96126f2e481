import CairnCore
import CairnExport
import CairnTesting
import Foundation
import Testing

/// The export's promise, as a property: any valid event in any format, ingested, exported as
/// a Segment message and ingested again into another app, gives the same canonical row field
/// by field; and distinct generated events are never merged into one.
///
/// Seeded (`CAIRN_ROUNDTRIP_SEED` repeats a run); the end-to-end twin through the real stack
/// and its batch files is `StackTests.exportedBatchFilesIngestIntoTheSameRows`.
@Suite struct RoundTripTests {
    static let seed = ProcessInfo.processInfo.environment["CAIRN_ROUNDTRIP_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
    static let perFormat = 1000

    /// Ingest's context: receipt a month after the generated times, so that records without one differ from those with.
    static func context(_ app: String) -> IngestContext {
        IngestContext(appToken: app, receivedAt: Timestamp(parsing: "2024-06-01T00:00:00.000001Z")!, personalData: .hash)
    }

    /// The fields a round trip must keep (all but the app, the ids derived from it, and the receipt time).
    static func comparable(_ event: CanonicalEvent) -> JSON {
        var object = event.json.objectValue ?? JSONObject()
        for key in ["app_token", "internal_event_id", "received_at", "message_id"] { object[key] = nil }
        return .object(object)
    }

    /// The fields that differ, each as `field: before → after`.
    static func differences(_ before: JSON, _ after: JSON) -> [String] {
        let keys = Set((before.objectValue?.keys ?? []) + (after.objectValue?.keys ?? []))
        return keys.sorted().compactMap { key in
            before[key] == after[key] ? nil : "\(key): \(before[key]?.serializedString() ?? "absent") → \(after[key]?.serializedString() ?? "absent")"
        }
    }

    @Test(arguments: InputFormat.allCases)
    func everyEventSurvivesExportAndIngestAgain(format: InputFormat) throws {
        print("round trip \(format): seed \(Self.seed)")
        var generator = RecordGenerator(seed: Self.seed &+ UInt64(InputFormat.allCases.firstIndex(of: format)!))
        var first: [CanonicalEvent] = []
        for index in 0..<Self.perFormat {
            let record = generator.record(format, index: index)
            let outcome = EventNormalizer.normalize(recordBytes: record.serialized(), format: .auto, context: Self.context("first"))
            guard let event = outcome.events.first, outcome.events.count == 1 else {
                Issue.record(
                    "seed \(Self.seed): generated \(format) record refused: \(outcome.rejections.first?.error.description ?? "?"): \(record.serializedString())"
                )
                continue
            }
            first.append(event)
            let message = JSON.object(SegmentMapper.message(for: event)).serialized()
            let again = EventNormalizer.normalize(recordBytes: message, format: .auto, context: Self.context("second"))
            guard let second = again.events.first else {
                Issue.record(
                    "seed \(Self.seed): exported message refused: \(again.rejections.first?.error.description ?? "?"): \(String(decoding: message, as: UTF8.self))"
                )
                continue
            }
            let differences = Self.differences(Self.comparable(event), Self.comparable(second))
            #expect(
                differences.isEmpty,
                "seed \(Self.seed): \(differences.joined(separator: "; ")) in \(record.serializedString()) → \(String(decoding: message, as: UTF8.self))"
            )
            #expect(second.messageId == SegmentMapper.messageId(for: event))
            // Into the same app (a restore), every event is itself again: its id, its messageId or none.
            let restored = EventNormalizer.normalize(recordBytes: message, format: .auto, context: Self.context("first")).events.first
            #expect(
                restored?.internalEventId == event.internalEventId && restored?.messageId == event.messageId,
                "seed \(Self.seed): a restore changed the id of \(String(decoding: message, as: UTF8.self))"
            )
        }
        // Distinct events are never merged: two share an id only when their records do.
        var byId: [UInt64: JSON] = [:]
        for event in first {
            let content = Self.comparable(event)
            if let earlier = byId[event.internalEventId], event.messageId == nil {
                // Userpilot's key covers type, name, ids and time only (Userpilot's event schema); every other format's covers the record.
                let same = format == .userpilot ? earlier["inserted_at"] == content["inserted_at"] : earlier == content
                #expect(
                    same,
                    "seed \(Self.seed): two different \(format) events share an id: \(earlier.serializedString()) and \(content.serializedString())"
                )
            }
            byId[event.internalEventId] = content
        }
        // And equal records are one event: each record's redelivery has its id.
        #expect(byId.count <= first.count)
    }
}
