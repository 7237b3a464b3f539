public import CastleSupport
internal import Ledger
public import Streams

/// The report's formats (spec/reconcile.md): NDJSON, CSV with the same columns, and a table for people.
public enum ReportFormat: String, Sendable, CaseIterable {
    case table, ndjson, csv
}

/// Writes result records, byte-identical for the same records and run.
public enum ReportWriter {
    public static let csvColumns = [
        "run", "class", "rule", "source", "external", "ledger", "currency", "external_amount", "ledger_amount",
        "difference", "detail", "statement", "opening", "entries_net", "closing", "computed_closing", "ok",
        "resolution", "earlier_run",
    ]

    public static func write(
        _ records: [ResultRecord],
        run: String,
        format: ReportFormat,
        to sink: OutputSink
    ) throws(CastleError) {
        switch format {
        case .ndjson:
            // Two chunks at a time: the second made on a thread of its own while this one makes and
            // writes the first, then written after it, so the lines keep their order.
            var start = records.startIndex
            while start < records.endIndex {
                let middle = min(start + ndjsonChunk, records.endIndex)
                let end = min(middle + ndjsonChunk, records.endIndex)
                let second = BackgroundWork { () -> [UInt8] in
                    var bytes: [UInt8] = []
                    for record in records[middle..<end] { appendNDJSONLine(record, run: run, to: &bytes) }
                    return bytes
                }
                var line: [UInt8] = []
                line.reserveCapacity(1024)
                for record in records[start..<middle] {
                    line.removeAll(keepingCapacity: true)
                    appendNDJSONLine(record, run: run, to: &line)
                    try line.withUnsafeBufferPointer { (bytes) throws(CastleError) in try sink.write(bytes) }
                }
                try second.join().withUnsafeBufferPointer { (bytes) throws(CastleError) in try sink.write(bytes) }
                start = end
            }
        case .csv:
            try sink.write(csvColumns.joined(separator: ",") + "\n")
            for record in records {
                try sink.write(csvRow(record, run: run).map(csvField).joined(separator: ",") + "\n")
            }
        case .table:
            try writeTable(records.map { csvRow($0, run: run) }, to: sink)
        }
    }

    /// Records a chunk of the NDJSON report (a few MB of lines).
    static let ndjsonChunk = 8192

    static func appendNDJSONLine(_ record: ResultRecord, run: String, to out: inout [UInt8]) {
        appendNDJSON(record, run: run, to: &out)
        out.append(UInt8(ascii: "\n"))
    }

    /// A table for people, from rows in ``csvColumns`` order (a stored run's rows too).
    public static func writeTable(_ csvRows: [[String]], to sink: OutputSink) throws(CastleError) {
        let header = ["class", "rule", "source", "external", "ledger", "currency", "external", "ledger", "detail"]
        var rows = [header]
        // Rows stored before `earlier_run` was added have one column less.
        for row in csvRows where row.count == csvColumns.count || row.count == csvColumns.count - 1 {
            let resolved = row[17].isEmpty ? "" : " [resolved: \(row[17])]"
            if row[1] == ResultClass.balanceProof.rawValue {
                rows.append([
                    row[1], "", row[3], row[11], "", row[6], row[14], row[15],
                    (row[16] == "true" ? "adds up" : "does not add up") + (row[10].isEmpty ? "" : ": " + row[10])
                        + resolved,
                ])
            } else {
                rows.append([row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[10] + resolved])
            }
        }
        var widths = Array(repeating: 0, count: header.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < header.count - 1 {
                widths[column] = min(40, max(widths[column], cell.count))
            }
        }
        for row in rows {
            var line = ""
            for (column, cell) in row.enumerated() {
                if column == header.count - 1 {
                    line += cell
                } else {
                    let cut = cell.count > 40 ? String(cell.prefix(39)) + "…" : cell
                    line += cut + String(repeating: " ", count: widths[column] - cut.count + 2)
                }
            }
            while line.last == " " { line.removeLast() }
            try sink.write(line + "\n")
        }
    }

    /// The fields of one CSV line as ``write(_:run:format:to:)`` writes them (quoted when needed; no
    /// line breaks inside), for the table of a stored run.
    public static func splitCSVLine(_ line: String) -> [String] {
        var fields: [String] = []
        var field = ""
        var quoted = false
        var justClosed = false
        for character in line {
            if quoted {
                if character == "\"" {
                    quoted = false
                    justClosed = true
                } else {
                    field.append(character)
                }
                continue
            }
            if character == "\"" {
                // A doubled quote inside a quoted field is one quote.
                if justClosed { field.append(character) }
                quoted = true
            } else if character == "," {
                fields.append(field)
                field = ""
            } else {
                field.append(character)
            }
            justClosed = false
        }
        fields.append(field)
        return fields
    }

    static func amount(_ record: ResultRecord, _ value: Int128?) -> String {
        guard let value, let currency = record.currency else { return "" }
        return currency.format(value)
    }

    /// The CSV columns' values, in ``csvColumns`` order.
    public static func csvRow(_ record: ResultRecord, run: String) -> [String] {
        var difference = ""
        if let external = record.externalAmount, let ledger = record.ledgerAmount, let currency = record.currency {
            difference = currency.format(external - ledger)
        }
        var row = [
            run, record.resultClass.rawValue, record.rule, record.source, record.external.joined(separator: ";"),
            record.ledger.joined(separator: ";"), record.currency?.code ?? "", amount(record, record.externalAmount),
            amount(record, record.ledgerAmount), difference, record.detail,
        ]
        if let proof = record.proof {
            let currency = proof.currency
            func format(_ value: Int128?) -> String { value.flatMap { v in currency.map { $0.format(v) } } ?? "" }
            row[6] = currency?.code ?? ""
            row[10] = proof.detail
            row += [
                proof.statement, format(proof.opening.map { Int128($0) }), format(proof.entriesNet),
                format(proof.closing.map { Int128($0) }), format(proof.computedClosing), proof.ok ? "true" : "false",
            ]
        } else {
            row += ["", "", "", "", "", ""]
        }
        row.append(record.resolution ?? "")
        row.append(record.earlierRun ?? "")
        return row
    }

    public static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingAll("\"", with: "\"\"") + "\""
    }

    public static func ndjsonLine(_ record: ResultRecord, run: String) -> String {
        var out: [UInt8] = []
        appendNDJSON(record, run: run, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends ``ndjsonLine(_:run:)``'s bytes (without a newline) to `out`, without a `String` between.
    public static func appendNDJSON(_ record: ResultRecord, run: String, to out: inout [UInt8]) {
        func key(_ text: StaticString) {
            out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }
        /// An amount at its currency's scale as a JSON string; null without either.
        func amountOrNull(_ value: Int128?, _ currency: Asset?) {
            guard let value, let currency else { return key("null") }
            out.append(UInt8(ascii: "\""))
            appendAmount(value, scale: currency.scale, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        key("{\"run\":")
        appendJSONString(run, to: &out)
        key(",\"class\":")
        appendJSONString(record.resultClass.rawValue, to: &out)
        if let proof = record.proof {
            let currency = proof.currency
            func amount(_ value: Int128?) { amountOrNull(value, currency) }
            key(",\"source\":")
            appendJSONString(record.source, to: &out)
            key(",\"statement\":")
            appendJSONString(proof.statement, to: &out)
            key(",\"currency\":")
            if let currency { appendJSONString(currency.code, to: &out) } else { key("null") }
            key(",\"opening\":")
            amount(proof.opening.map { Int128($0) })
            key(",\"entries_net\":")
            amount(proof.entriesNet)
            key(",\"closing\":")
            amount(proof.closing.map { Int128($0) })
            key(",\"computed_closing\":")
            amount(proof.computedClosing)
            key(",\"ok\":")
            if proof.ok { key("true") } else { key("false") }
            key(",\"detail\":")
            appendJSONString(proof.detail, to: &out)
            if let resolution = record.resolution {
                key(",\"resolution\":")
                appendJSONString(resolution, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            return
        }
        func amount(_ value: Int128?) { amountOrNull(value, record.currency) }
        key(",\"rule\":")
        appendJSONString(record.rule, to: &out)
        key(",\"source\":")
        appendJSONString(record.source, to: &out)
        key(",\"external\":[")
        for (index, id) in record.external.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(id, to: &out)
        }
        key("],\"ledger\":[")
        for (index, id) in record.ledger.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendJSONString(id, to: &out)
        }
        key("],\"currency\":")
        if let currency = record.currency { appendJSONString(currency.code, to: &out) } else { key("null") }
        key(",\"external_amount\":")
        amount(record.externalAmount)
        key(",\"ledger_amount\":")
        amount(record.ledgerAmount)
        key(",\"difference\":")
        if let external = record.externalAmount, let ledger = record.ledgerAmount {
            amount(external - ledger)
        } else {
            key("null")
        }
        key(",\"detail\":")
        appendJSONString(record.detail, to: &out)
        if let earlierRun = record.earlierRun {
            key(",\"earlier_run\":")
            appendJSONString(earlierRun, to: &out)
        }
        if let resolution = record.resolution {
            key(",\"resolution\":")
            appendJSONString(resolution, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// ``Asset/format(_:)-(Int128)``'s text of `units` at `scale`, appended as bytes.
    static func appendAmount(_ units: Int128, scale: UInt8, to out: inout [UInt8]) {
        // The digits backwards, in a buffer on the stack (an Int128 has at most 39; the scale at most 18).
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { digits in
            var count = 0
            if let small = UInt64(exactly: units.magnitude) {
                var magnitude = small
                repeat {
                    digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                    magnitude /= 10
                    count += 1
                } while magnitude > 0
            } else {
                var magnitude = units.magnitude
                repeat {
                    digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                    magnitude /= 10
                    count += 1
                } while magnitude > 0
            }
            let decimals = Int(scale)
            while count <= decimals {
                digits[count] = UInt8(ascii: "0")
                count += 1
            }
            if units < 0 { out.append(UInt8(ascii: "-")) }
            for index in stride(from: count - 1, through: 0, by: -1) {
                if decimals > 0 && index == decimals - 1 { out.append(UInt8(ascii: ".")) }
                out.append(digits[index])
            }
        }
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for character in self { if character == target { out += replacement } else { out.append(character) } }
        return out
    }
}
