import RedisClient
import Testing

/// The cluster's key → slot rule, against the spec's vector and its hash-tag examples.
@Suite struct HashSlotTests {
    @Test func crc16MatchesTheSpecVector() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3)
        #expect(HashSlot.of("123456789") == 0x31C3 & 0x3FFF)
        #expect(HashSlot.of("") == 0)
    }

    @Test func theHashTagIsTheFirstNonEmptyBraces() {
        #expect(HashSlot.of("{user1000}.following") == HashSlot.of("{user1000}.followers"), "one tag, one slot")
        #expect(HashSlot.of("{user1000}.following") == HashSlot.of("user1000"))
        #expect(HashSlot.of("foo{}{bar}") == 8363 && HashSlot.of("foo{bar}{zap}") == 5061 && HashSlot.of("foo{{bar}}zap") == 4015, "values Redis gives (CLUSTER KEYSLOT)")
        #expect(String(decoding: HashSlot.hashed(Array("foo{}{bar}".utf8)), as: UTF8.self) == "foo{}{bar}")
        #expect(String(decoding: HashSlot.hashed(Array("foo{{bar}}zap".utf8)), as: UTF8.self) == "{bar", "from the first { to the first } after it")
        #expect(String(decoding: HashSlot.hashed(Array("foo{bar}{zap}".utf8)), as: UTF8.self) == "bar", "only the first tag counts")
        #expect(String(decoding: HashSlot.hashed(Array("foo{bar".utf8)), as: UTF8.self) == "foo{bar", "unclosed: the whole key")
        #expect(String(decoding: HashSlot.hashed(Array("}foo{".utf8)), as: UTF8.self) == "}foo{", "a } before the { closes nothing")
        #expect(HashSlot.of("camera:{7}:latest") == HashSlot.of("alerts:{7}"))
    }
}
