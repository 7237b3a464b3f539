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
        "resolution",
    ]

    public static func write(
        _ records: [ResultRecord],
        run: String,
        format: ReportFormat,
        to sink: OutputSink
    ) throws(CastleError) {
        switch format {
        case .ndjson:
            for record in records { try sink.write(ndjsonLine(record, run: run) + "\n") }
        case .csv:
            try sink.write(csvColumns.joined(separator: ",") + "\n")
            for record in records {
                try sink.write(csvRow(record, run: run).map(csvField).joined(separator: ",") + "\n")
            }
        case .table:
            try writeTable(records.map { csvRow($0, run: run) }, to: sink)
        }
    }

    /// A table for people, from rows in ``csvColumns`` order (a stored run's rows too).
    public static func writeTable(_ csvRows: [[String]], to sink: OutputSink) throws(CastleError) {
        let header = ["class", "rule", "source", "external", "ledger", "currency", "external", "ledger", "detail"]
        var rows = [header]
        for row in csvRows where row.count == csvColumns.count {
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
        return row
    }

    public static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingAll("\"", with: "\"\"") + "\""
    }

    public static func ndjsonLine(_ record: ResultRecord, run: String) -> String {
        var out = "{\"run\":\(json(run)),\"class\":\(json(record.resultClass.rawValue))"
        if let proof = record.proof {
            let currency = proof.currency
            func format(_ value: Int128?) -> String {
                guard let value, let currency else { return "null" }
                return json(currency.format(value))
            }
            out += ",\"source\":\(json(record.source)),\"statement\":\(json(proof.statement))"
            out += ",\"currency\":\(currency.map { json($0.code) } ?? "null")"
            out +=
                ",\"opening\":\(format(proof.opening.map { Int128($0) })),\"entries_net\":\(format(proof.entriesNet))"
            out += ",\"closing\":\(format(proof.closing.map { Int128($0) }))"
            out += ",\"computed_closing\":\(format(proof.computedClosing)),\"ok\":\(proof.ok)"
            out += ",\"detail\":\(json(proof.detail))"
            if let resolution = record.resolution { out += ",\"resolution\":\(json(resolution))" }
            return out + "}"
        }
        let row = csvRow(record, run: run)
        out += ",\"rule\":\(json(record.rule)),\"source\":\(json(record.source))"
        out += ",\"external\":[\(record.external.map(json).joined(separator: ","))]"
        out += ",\"ledger\":[\(record.ledger.map(json).joined(separator: ","))]"
        out += ",\"currency\":\(record.currency.map { json($0.code) } ?? "null")"
        out += ",\"external_amount\":\(row[7].isEmpty ? "null" : json(row[7]))"
        out += ",\"ledger_amount\":\(row[8].isEmpty ? "null" : json(row[8]))"
        out += ",\"difference\":\(row[9].isEmpty ? "null" : json(row[9]))"
        out += ",\"detail\":\(json(record.detail))"
        if let resolution = record.resolution { out += ",\"resolution\":\(json(resolution))" }
        return out + "}"
    }

    static func json(_ text: String) -> String { String(decoding: jsonStringLiteral(Array(text.utf8)), as: UTF8.self) }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for character in self { if character == target { out += replacement } else { out.append(character) } }
        return out
    }
}
