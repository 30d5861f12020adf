import Foundation

/// Runs a blocking librdkafka call on a thread of its own and awaits it: never on Swift's
/// cooperative pool, nor on Dispatch's global queue, which on Linux shares its width.
func blockingCall<T: Sendable>(_ body: @escaping @Sendable () throws(KafkaError) -> T) async throws(KafkaError) -> T {
    let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
        Thread {
            do throws(KafkaError) { continuation.resume(returning: .success(try body())) } catch { continuation.resume(returning: .failure(error)) }
        }.start()
    }
    return try result.get()
}
