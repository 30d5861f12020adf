/// The one set of `Duration` conversions of the product: to seconds for arithmetic and JSON, to
/// whole milliseconds, microseconds and nanoseconds for C APIs and Redis arguments. Whole units
/// round toward zero and saturate at `Int64`'s bounds instead of trapping.
extension Duration {
    /// The duration in seconds, with its fraction (`1.5` for 1500 ms).
    public var inSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }

    /// The duration in milliseconds, with its fraction (for logs and JSON figures).
    public var inMilliseconds: Double { inSeconds * 1000 }

    /// Whole seconds, rounded toward zero.
    public var wholeSeconds: Int64 { components.seconds }

    /// `seconds` as a duration, whatever the number: NaN is zero, and values beyond a century
    /// (infinities included) are a century, so a number read from outside never traps.
    public static func seconds(saturating seconds: Double) -> Duration {
        let century = 100.0 * 365 * 24 * 3600
        guard seconds.isFinite else { return seconds.isNaN ? .zero : .seconds(seconds > 0 ? century : -century) }
        return .seconds(min(max(seconds, -century), century))
    }

    /// Whole milliseconds, rounded toward zero.
    public var wholeMilliseconds: Int64 { whole(unitsPerSecond: 1_000) }

    /// Whole microseconds, rounded toward zero.
    public var wholeMicroseconds: Int64 { whole(unitsPerSecond: 1_000_000) }

    /// Whole nanoseconds, rounded toward zero.
    public var wholeNanoseconds: Int64 { whole(unitsPerSecond: 1_000_000_000) }

    private func whole(unitsPerSecond: Int64) -> Int64 {
        let parts = components
        let attosecondsPerUnit = 1_000_000_000_000_000_000 / unitsPerSecond
        let (scaled, overflow) = parts.seconds.multipliedReportingOverflow(by: unitsPerSecond)
        if overflow { return parts.seconds < 0 ? .min : .max }
        let (sum, sumOverflow) = scaled.addingReportingOverflow(parts.attoseconds / attosecondsPerUnit)
        if sumOverflow { return parts.seconds < 0 ? .min : .max }
        return sum
    }
}
