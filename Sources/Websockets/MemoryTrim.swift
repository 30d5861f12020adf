import CWebsockets

/// Hands freed heap memory back to the operating system. glibc keeps freed pages for reuse, so
/// after a burst of large allocations a server's resident size would stay at the peak.
public enum MemoryTrim {
    /// Blocks for as long as the allocator takes (milliseconds on a large heap): call it from a
    /// thread of its own, never from an event loop or Swift's cooperative pool.
    public static func releaseFreePages() {
        _ = traffic_malloc_trim()
    }
}
