import Foundation

/// Runs blocking `work` on a new thread of its own and awaits its value or error: never on
/// Swift's cooperative pool (two threads on a two-core machine), nor on Dispatch's global
/// queue, which on Linux shares its width with that pool. For calls that block for long or
/// unknown times: joining librdkafka's threads, training a model, reaping a process.
public func onOwnThread<T: Sendable, E: Error>(stackSize: Int? = nil, _ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        let thread = Thread {
            do throws(E) {
                continuation.resume(returning: .success(try work()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        if let stackSize { thread.stackSize = stackSize }
        thread.start()
    }
    return try result.get()
}

/// Starts blocking `work` on a new thread of its own and returns at once.
public func startOwnThread(_ work: @escaping @Sendable () -> Void) {
    Thread(block: work).start()
}
