import CairnCore
import Foundation

/// Reads input records from a file: JSON lines (one record per non-blank line), or a JSON
/// array of records when the file's first non-blank byte is `[`.
struct RecordReader {
    /// One record and where it came from.
    struct Record {
        /// The 1-based line number (JSON lines) or element number (JSON array).
        var number: Int
        var text: String
        /// The line's bytes when they are not UTF-8 (`text` then holds a lossy decoding), so
        /// that its dead letter keeps them as they were.
        var invalidBytes: [UInt8]? = nil
    }

    let handle: FileHandle
    private var buffer: [UInt8] = []
    private var offset = 0
    private var lineNumber = 0
    private var finished = false
    private var arrayRecords: [JSON]?
    private var arrayIndex = 0

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("cannot open \(path)") }
        self.handle = handle
        try fill()
        if let first = buffer.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }), first == UInt8(ascii: "[") {
            var all = buffer
            while let more = try handle.read(upToCount: 1 << 20), !more.isEmpty { all.append(contentsOf: more) }
            do {
                guard case .array(let elements) = try JSONParser.parse(all) else { throw CLIError("\(path): expected a JSON array") }
                arrayRecords = elements
            } catch let error as JSONParseError {
                throw CLIError("\(path) starts with '[' but is not a valid JSON array: \(error)")
            }
        }
    }

    private mutating func fill() throws {
        if offset > 0 {
            buffer.removeSubrange(0..<offset)
            offset = 0
        }
        if let more = try handle.read(upToCount: 1 << 20), !more.isEmpty {
            buffer.append(contentsOf: more)
        } else {
            finished = true
        }
    }

    mutating func next() throws -> Record? {
        if let records = arrayRecords {
            guard arrayIndex < records.count else { return nil }
            defer { arrayIndex += 1 }
            return Record(number: arrayIndex + 1, text: records[arrayIndex].serializedString())
        }
        while true {
            if let newline = buffer[offset...].firstIndex(of: 0x0A) {
                let line = buffer[offset..<newline]
                offset = newline + 1
                lineNumber += 1
                if let record = record(from: line) { return record }
                continue
            }
            if finished {
                guard offset < buffer.count else { return nil }
                let line = buffer[offset...]
                offset = buffer.count
                lineNumber += 1
                return record(from: line)
            }
            try fill()
        }
    }

    private func record(from line: ArraySlice<UInt8>) -> Record? {
        var slice = line
        while let last = slice.last, last == 0x0D || last == 0x20 || last == 0x09 { slice.removeLast() }
        guard slice.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { return nil }
        if let text = String(validating: slice, as: UTF8.self) {
            return Record(number: lineNumber, text: text)
        }
        return Record(number: lineNumber, text: String(decoding: slice, as: UTF8.self), invalidBytes: Array(slice))
    }
}
