import CairnCore
import Foundation

// The format layer alone, one core: parse, validate and normalise records of each input
// format into canonical events, as ingest does for every record. Records are generated in
// memory, deterministic, in the shapes of the fixtures; nothing else is timed.

let count = Int(ProcessInfo.processInfo.environment["BENCH_FORMAT_EVENTS"] ?? "") ?? 200_000
let context = IngestContext(
    appToken: "bench",
    receivedAt: Timestamp(parsing: "2024-06-01T00:00:00Z")!,
    attributes: AttributeRegistry(types: ["price": .number, "items": .number])
)

func time(_ n: Int) -> String {
    String(format: "2024-05-%02dT%02d:%02d:%02d.%06dZ", 1 + n % 28, n / 3600 % 24, n / 60 % 60, n % 60, n % 1_000_000)
}

/// A hostile client's record: an identify with 2,600 traits, just under the 32 KB record limit.
/// A key lookup that scans would make each record cost the square of its keys.
func wideIdentify(_ n: Int) -> String {
    let traits = (0..<2600).map { #""t\#($0)":\#(n % 7)"# }.joined(separator: ",")
    return #"{"type":"identify","userId":"user-\#(n % 1000)","messageId":"w-\#(n)","timestamp":"\#(time(n))","traits":{\#(traits)}}"#
}

let generators: [(String, EventNormalizer.FormatChoice, (Int) -> String)] = [
    (
        "userpilot", .userpilot,
        { n in
            #"{"app_token":"bench","event_type":"track","event_name":"Purchased","user_id":"user-\#(n % 1000)","company_id":"company-\#(n % 50)","source":"web-client","inserted_at":"\#(time(n))","hostname":"app.example.com","pathname":"/checkout","screen_width":1440,"screen_height":900,"device_type":"desktop","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0 Safari/537.36","operating_system":"macOS","browser":"Chrome","browser_language":"en-US","session":"\#(n % 50)","country_code":"DE","metadata":{"price":\#(n % 500),"sku":"\#(n % 1000)","color":"teal"}}"#
        }
    ),
    (
        "segment", .segment,
        { n in
            #"{"type":"track","event":"Order Completed","userId":"user-\#(n % 1000)","anonymousId":null,"messageId":"m-\#(n)","timestamp":"\#(time(n))","properties":{"revenue":19.99,"currency":"USD","sku":"\#(n % 1000)"},"context":{"library":{"name":"analytics-python","version":"2.4.0"},"page":{"url":"https://app.example.com/checkout?step=3"},"userAgent":"Mozilla/5.0","locale":"en-US","os":{"name":"macOS"},"device":{"type":"desktop"},"screen":{"width":1440,"height":900}},"integrations":{}}"#
        }
    ),
    (
        "userguiding", .userguiding,
        { n in
            #"{"event":"guide button click","payload":{"guideId":"\#(n % 40)","guideName":"Onboarding","step":"2","buttonId":"f386cafa-d5ea-45e4-8a0b-969753230462","type":"custom","action":"next","ctaText":"Next","pageUrl":"https://panel.example.com/dashboard"},"user_id":"user-\#(n % 1000)","timestamp":"\#(time(n))"}"#
        }
    ),
    (
        "userlike", .userlike,
        { n in
            #"{"event_name":"chat_started","global_ctx":{"client_uuid":"client-\#(n % 1000)","operator_group_id":12,"widget_id":4711,"widget_lang":"en"},"session_ctx":{"session_id":"s-\#(n % 90)","chat_id":"chat-\#(n)","operator_id":301,"operator_name":"Jane","client_email":"user\#(n % 1000)@example.com"},"timestamp":"\#(time(n))"}"#
        }
    ),
    (
        "usercom", .usercom,
        { n in
            #"{"event":"event.purchase","user_id":"user-\#(n % 1000)","timestamp":"\#(time(n))","attributes":{"price":"\#(n % 500).50","items":\#(n % 9),"color":"teal"}}"#
        }
    ),
]

print("format layer, one core, \(count) records per format (release build)")
print("format        events/s   target")
var results: [String] = []
for (name, format, generate) in generators + [("segment-wide", .segment, wideIdentify)] {
    // The wide records are 31 KB each: fewer of them make as long a pass.
    let records = (0..<(name == "segment-wide" ? max(count / 200, 10) : count)).map { Array(generate($0).utf8) }
    // One warm-up pass, then the median of three timed passes.
    var rates: [Double] = []
    for pass in 0..<4 {
        let start = ContinuousClock.now
        var events = 0
        for record in records {
            let outcome = EventNormalizer.normalize(recordBytes: record, format: format, context: context)
            events += outcome.events.count
            if !outcome.rejections.isEmpty { fatalError("\(name) record rejected: \(outcome.rejections[0].error)") }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if pass > 0 { rates.append(Double(events) / seconds) }
    }
    let median = rates.sorted()[1]
    let target = (name == "userpilot" || name == "segment") ? "150,000" : "-"
    print(name.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%10.0f", median) + "   " + target)
    results.append("\"\(name)\": \(Int(median))")
}
if let path = ProcessInfo.processInfo.environment["BENCH_FORMAT_JSON"] {
    try? ("{" + results.joined(separator: ", ") + "}\n").write(toFile: path, atomically: true, encoding: .utf8)
}
