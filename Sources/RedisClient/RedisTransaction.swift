/// The outcome of `RedisClient.transaction(watching:reads:prepare:)` that committed: the reply
/// of every queued command (in order, error replies included) and what `prepare` returned.
public struct RedisTransactionResult<Value: Sendable>: Sendable {
    public var replies: [RedisReply]
    public var value: Value
    /// The reply of the command sent right after `EXEC` (`after:`), e.g. `WAIT`'s replica count.
    public var afterReply: RedisReply? = nil
    /// The connection the transaction ran on (`RedisConnection.serial`).
    public var connection: UInt64 = 0
}

extension RedisClient {
    /// An optimistic (check-and-set) transaction in two round trips on this client's connection.
    ///
    /// First `WATCH keys` and the `reads` are sent together; then `prepare` turns the read
    /// replies into the commands to apply, and those go out as `MULTI` … `EXEC`. Redis runs them
    /// atomically, and only if no watched key was changed by anyone since the `WATCH`.
    ///
    /// Returns nil when a watched key changed in between: nothing was applied; read again and
    /// retry. When `prepare` returns no commands, the watch is released and the result has no
    /// replies. When `prepare` throws, the watch is released and the error is rethrown. When
    /// Redis refuses `MULTI` itself, the commands it did not refuse as well ran without a
    /// transaction: that throws `.notAtomic` (retrying would apply them twice).
    /// A lost connection throws `.connectionLost`; whether `EXEC` ran is then unknown.
    ///
    /// `after` is sent in the same write right after `EXEC`, on the same connection (so `WAIT`
    /// counts the replicas that have this transaction, never a reconnected connection's
    /// nothing); its reply is `afterReply`.
    public func transaction<Value: Sendable>(
        watching keys: [String],
        reads: RedisPipeline,
        after: RedisArguments? = nil,
        prepare: @escaping @Sendable ([RedisReply]) throws(RedisError) -> (commands: [RedisArguments], value: Value)
    ) async throws(RedisError) -> RedisTransactionResult<Value>? {
        let readCommands = reads.commands
        return try await perform { connection throws(RedisError) in
            try connection.transaction(watching: keys, reads: readCommands, after: after, prepare: prepare)
        }
    }
}

extension RedisConnection {
    /// See `RedisClient.transaction(watching:reads:prepare:)`; blocking.
    func transaction<Value>(
        watching keys: [String],
        reads: [RedisArguments],
        after: RedisArguments? = nil,
        prepare: ([RedisReply]) throws(RedisError) -> (commands: [RedisArguments], value: Value)
    ) throws(RedisError) -> RedisTransactionResult<Value>? {
        let watching = !keys.isEmpty
        var first: [RedisArguments] = []
        first.reserveCapacity(reads.count + 1)
        if watching { first.append(RedisArguments("WATCH", keys)) }
        first += reads
        var replies = try pipeline(first)
        if watching {
            if case .error(let message) = replies[0] {
                throw RedisError(kind: .server, message: message, command: "WATCH")
            }
            replies.removeFirst()
        }
        let prepared: (commands: [RedisArguments], value: Value)
        do {
            prepared = try prepare(replies)
        } catch {
            if watching { _ = try send(RedisArguments("UNWATCH")) }
            throw error
        }
        if prepared.commands.isEmpty {
            if watching { _ = try send(RedisArguments("UNWATCH")) }
            return RedisTransactionResult(replies: [], value: prepared.value, connection: serial)
        }
        try append(RedisArguments("MULTI"))
        for command in prepared.commands { try append(command) }
        try append(RedisArguments("EXEC"))
        if let after { try append(after) }
        // MULTI's +OK, then +QUEUED per command (an error here makes EXEC fail with EXECABORT).
        var queueingError: (String, String)?
        var ranOutsideTransaction = 0
        for index in 0...prepared.commands.count {
            let reply = try readReply()
            if case .error(let message) = reply {
                if queueingError == nil { queueingError = (message, index == 0 ? "MULTI" : prepared.commands[index - 1].name) }
            } else if index > 0, reply != .status("QUEUED") {
                ranOutsideTransaction += 1
            }
        }
        let execReply = try readReply()
        let afterReply = after == nil ? nil : try readReply()
        if let (message, command) = queueingError, command == "MULTI" {
            // MULTI refused: EXEC fails without releasing the watch, so release it. Whatever
            // commands Redis did not refuse as well ran one by one, outside any transaction.
            if watching { _ = try send(RedisArguments("UNWATCH")) }
            if ranOutsideTransaction == 0 {
                throw RedisError(kind: .server, message: message, command: "MULTI")
            }
            throw RedisError(kind: .notAtomic, message: "MULTI refused (\(message)); \(ranOutsideTransaction) of \(prepared.commands.count) commands ran without a transaction", command: "MULTI")
        }
        switch execReply {
        case .null:
            return nil
        case .array(let results):
            return RedisTransactionResult(replies: results, value: prepared.value, afterReply: afterReply, connection: serial)
        case .error(let message):
            let (cause, command) = queueingError ?? (message, "EXEC")
            throw RedisError(kind: .server, message: cause, command: command)
        case let other:
            throw Decode.unexpected(other, "EXEC's array of replies")
        }
    }
}
