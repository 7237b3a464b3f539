import Logging

/// serve's loggers, on stderr: text lines, or JSON lines with `--log-format json`.
enum ServerLogging {
    static func logger(label: String, format: ServeOptions.LogFormat) -> Logger {
        var logger = Logger(label: label) { label in
            switch format {
            case .text: StreamLogHandler.standardError(label: label)
            case .json: JSONLogHandler(label: label)
            }
        }
        logger.logLevel = .info
        return logger
    }
}
