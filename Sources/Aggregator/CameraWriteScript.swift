import RedisClient

/// One camera's writes on a Redis Cluster, applied by a script only if the camera's state is
/// still what they were planned from: the check `WATCH` makes for a transaction, made by value,
/// so the scripts of many cameras go to their primary in one pipeline (a connection holds one
/// `WATCH`ed transaction at a time, a pipeline any number of scripts).
///
/// The state compared is what `StoredBatchState` watches: the camera's position hash fields it
/// reads (counter, epoch, applied Kafka message, legacy flag) and its `latest_ts`. The `alerted`
/// list is only ever written together with the position hash, so a change to it shows there.
/// The writes are `WriteTransaction.commands(for:readReplies:)`, the planner's own; the script
/// runs them in order (`redis.pcall`, so like `EXEC` one refused command leaves the others
/// applied and is reported) and answers `{1, replies}`, or `{0}` when the state changed (the
/// camera is read and planned again). Its keys all carry the camera's hash tag: one slot.
enum CameraWriteScript {
    static let script = RedisScript(#"""
        -- KEYS[1] camera:{id}:position, KEYS[2] camera:{id}:latest_ts
        -- ARGV[1..6] the position fields as planned from, ARGV[7] latest_ts: '' absent, '=' .. value
        -- ARGV[8] how many commands follow; each: its argument count, then its arguments
        local read = redis.call('HMGET', KEYS[1], 'offset', 'epoch', 'kafka_partition', 'kafka_offset', 'legacy_markers', 'kafka_topic')
        read[7] = redis.call('GET', KEYS[2])
        for i = 1, 7 do
          local now = read[i]
          if (now == false and ARGV[i] ~= '') or (now ~= false and ARGV[i] ~= '=' .. now) then return {0} end
        end
        local at = 9
        local replies = {}
        for c = 1, tonumber(ARGV[8]) do
          local count = tonumber(ARGV[at])
          replies[c] = redis.pcall(unpack(ARGV, at + 1, at + count))
          at = at + count + 1
        end
        return {1, replies}
        """#)

    /// What the script answered for one camera.
    enum Answer: Equatable {
        /// Applied; the replies of its commands, in order (error replies included).
        case applied([RedisReply])
        /// The camera's state changed since it was read: nothing applied.
        case changed
    }

    /// The script call for a camera whose round-1 replies (`StoredBatchState.reads` of its plan)
    /// are `read`: keys, expected state, and the commands planned from it.
    static func call(sha: String, camera: WritePlan.LatestUpdate, read: [RedisReply], commands: [RedisArguments]) throws(RedisError) -> RedisCommand<RedisReply> {
        guard read.count >= 2, case .array(let fields) = read[0], fields.count == StoredBatchState.positionFields.count,
              case .array(let timestamps) = read[1], timestamps.count == 1 else {
            throw RedisError(kind: .unexpectedReply, message: "the reads of camera \(camera.positionKey) are not those StoredBatchState asks for", command: "EVALSHA")
        }
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(8 + commands.reduce(0) { $0 + $1.count + 1 })
        for value in fields + timestamps {
            if case .bulk(let bytes) = value { arguments.append([UInt8(ascii: "=")] + bytes) } else { arguments.append([]) }
        }
        arguments.append(Array(String(commands.count).utf8))
        for command in commands {
            arguments.append(Array(String(command.count).utf8))
            arguments += command.parts
        }
        return RedisScript.evalsha(sha: sha, keys: [camera.positionKey, camera.timestampKey], arguments: arguments)
    }

    /// The script's answer; an error reply throws (`.server`: `NOSCRIPT`, a redirection, or a
    /// refusal of the script itself), any other shape is a bug.
    static func answer(_ reply: RedisReply) throws(RedisError) -> Answer {
        switch reply {
        case .array(let parts) where parts.count == 2 && parts[0] == .integer(1):
            guard case .array(let replies) = parts[1] else { break }
            return .applied(replies)
        case .array(let parts) where parts == [.integer(1)]:
            return .applied([]) // Lua drops an empty table's contents: no commands, no replies
        case .array(let parts) where parts == [.integer(0)]:
            return .changed
        case .error(let message):
            throw RedisError(kind: .server, message: message, command: "EVALSHA")
        default:
            break
        }
        throw RedisError(kind: .unexpectedReply, message: "the camera write script answered \(reply)", command: "EVALSHA")
    }
}
