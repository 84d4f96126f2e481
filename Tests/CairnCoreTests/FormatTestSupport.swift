import CairnCore
import Foundation

let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    .path

/// The non-blank lines of a fixture file.
func fixtureLines(_ name: String) throws -> [String] {
    try String(contentsOfFile: fixturesDirectory + "/" + name, encoding: .utf8).split(separator: "\n").map(String.init)
}

let testContext = IngestContext(appToken: "acme", receivedAt: Timestamp(parsing: "2024-07-01T00:00:00Z")!)

/// Normalises one record text; returns its single event or its first error.
func normalizeOne(
    _ text: String,
    format: EventNormalizer.FormatChoice = .auto,
    context: IngestContext = testContext
) -> Result<CanonicalEvent, EventError> {
    let outcome = EventNormalizer.normalize(recordBytes: Array(text.utf8), format: format, context: context)
    if let rejection = outcome.rejections.first { return .failure(rejection.error) }
    return .success(outcome.events[0])
}

func event(_ text: String, format: EventNormalizer.FormatChoice = .auto, context: IngestContext = testContext) throws -> CanonicalEvent {
    try normalizeOne(text, format: format, context: context).get()
}

func failure(_ text: String, format: EventNormalizer.FormatChoice = .auto, context: IngestContext = testContext) -> EventError? {
    if case .failure(let error) = normalizeOne(text, format: format, context: context) { return error }
    return nil
}
