import CairnCore
import CairnTesting
import Testing

/// Seeded fuzzing of the JSON parser and every format adapter (see ``Fuzzer``): no input may
/// crash them, every accepted event must be a valid canonical event, and every refusal must
/// say what was wrong.
@Suite struct FuzzTests {
    @Test func theJSONParserRoundTripsWhatItAccepts() async {
        var fuzzer = Fuzzer(target: "json")
        var accepted = 0
        await fuzzer.run { bytes in
            guard let value = try? JSONParser.parse(bytes) else { return }
            accepted += 1
            let again = try? JSONParser.parse(value.serialized())
            if again != value { Issue.record("re-parsing the serialized value changed it: \(String(decoding: bytes.prefix(300), as: UTF8.self))") }
        }
        #expect(accepted > 0, "some mutated inputs are still JSON")
    }

    @Test(arguments: ["userpilot", "segment", "userguiding", "userlike", "usercom"])
    func everyAdapterAcceptsOnlyValidEventsAndExplainsTheRest(_ format: String) async throws {
        let choice = try #require(EventNormalizer.FormatChoice(rawValue: format))
        let context = IngestContext(appToken: "acme", receivedAt: Timestamp(microseconds: 1_717_200_000_000_000))
        var fuzzer = Fuzzer(target: format)
        var events = 0
        var rejections = 0
        await fuzzer.run { bytes in
            for formatChoice in [choice, .auto] {
                let outcome = EventNormalizer.normalize(recordBytes: bytes, format: formatChoice, context: context)
                for event in outcome.events {
                    events += 1
                    do {
                        let back = try CanonicalEvent(canonical: event.json)
                        if back.internalEventId != event.internalEventId {
                            Issue.record("the event's id changed on its way through the spool format")
                        }
                    } catch {
                        Issue.record(
                            "\(format) accepted an event the canonical checks refuse (\(error)): \(String(decoding: bytes.prefix(300), as: UTF8.self))"
                        )
                    }
                }
                for rejection in outcome.rejections {
                    rejections += 1
                    if rejection.error.message.isEmpty {
                        Issue.record("a refusal without a reason: \(String(decoding: bytes.prefix(300), as: UTF8.self))")
                    }
                }
            }
        }
        #expect(events > 0 && rejections > 0, "the fuzzer reached both outcomes")
    }
}
