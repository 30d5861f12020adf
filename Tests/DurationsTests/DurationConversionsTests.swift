import Durations
import Testing

@Suite struct DurationConversionsTests {
    @Test func secondsKeepTheirFraction() {
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
        #expect(Duration.microseconds(250).inMilliseconds == 0.25)
        #expect(Duration.seconds(-2).inSeconds == -2)
    }

    @Test func wholeUnitsRoundTowardZero() {
        #expect(Duration.microseconds(1999).wholeMilliseconds == 1)
        #expect(Duration.nanoseconds(1999).wholeMicroseconds == 1)
        #expect(Duration.seconds(3).wholeNanoseconds == 3_000_000_000)
        #expect(Duration.milliseconds(-1500).wholeMilliseconds == -1500)
        #expect(Duration.zero.wholeMilliseconds == 0)
    }

    @Test func numbersFromOutsideBecomeDurationsWithoutTrapping() {
        #expect(Duration.seconds(saturating: 1.5) == .milliseconds(1500))
        #expect(Duration.seconds(saturating: .nan) == .zero)
        #expect(Duration.seconds(saturating: .infinity) == Duration.seconds(saturating: 1e300))
        #expect(Duration.seconds(saturating: -.infinity) < .zero)
        #expect(Duration.milliseconds(2999).wholeSeconds == 2)
    }

    @Test func wholeUnitsSaturateInsteadOfTrapping() {
        let huge = Duration.seconds(Int64.max)
        #expect(huge.wholeNanoseconds == .max)
        #expect(huge.wholeMilliseconds == .max)
        #expect(Duration.seconds(Int64.min).wholeMicroseconds == .min)
    }
}
