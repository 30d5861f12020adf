extension RedisClient {
    /// Every key matching `pattern`, each once, in the order `SCAN` first returned them: a whole
    /// cursor walk, `pageSize` keys asked for per call. A key written or deleted during the walk
    /// may or may not be in it (SCAN's guarantee); one present throughout is.
    public func keys(matching pattern: String, pageSize: Int = 1_000) async throws(RedisError) -> [String] {
        var cursor: UInt64 = 0
        var found: [String] = []
        var seen = Set<String>()
        repeat {
            let page = try await send(.scan(cursor: cursor, match: pattern, count: pageSize))
            for key in page.keys where seen.insert(key).inserted { found.append(key) }
            cursor = page.cursor
        } while cursor != 0
        return found
    }
}
