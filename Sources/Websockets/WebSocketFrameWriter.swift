import CWebsockets
import Foundation

/// Writing queued WebSocket frames straight to their sockets, a burst per `sendmsg`; service
/// thread only.
extension WebServerCore {
    /// Writes every connection's frames queued since the last flush.
    func flushDirty() {
        let batch = dirty
        dirty.removeAll(keepingCapacity: true)
        for c in batch {
            c.isDirty = false
            guard connections[c.id] === c, !c.awaitingWritable, !c.failed else { continue }
            if !writeQueued(c) { fail(c) }
        }
    }

    /// Writes `c`'s queued frames straight to its socket, as many per `writev` as it takes.
    /// What the socket does not take now waits for a writable callback: the rest of a frame
    /// cut short goes to lws' own buffer (so nothing lws writes itself — a PING, a close
    /// frame — can land inside it), whole frames stay queued. False when the socket failed.
    func writeQueued(_ c: WebSocketConnection) -> Bool {
        if lws_partial_buffered(c.wsi) != 0 {
            // lws still holds the rest of an earlier frame: it calls back once that is out.
            waitForWritable(c)
            return true
        }
        while !c.queue.isEmpty {
            vectors.removeAll(keepingCapacity: true)
            var offered = 0
            for frame in c.queue.frames[c.queue.head...] {
                let wire = frame.wire
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: wire.baseAddress), iov_len: wire.count))
                offered += wire.count
                if vectors.count == 64 || offered >= 256 * 1024 { break }
            }
            // sendmsg rather than writev: MSG_NOSIGNAL, so a client that reset its connection
            // is an EPIPE here even if SIGPIPE's disposition was ever restored.
            let written = vectors.withUnsafeMutableBufferPointer { iov -> Int in
                var message = msghdr()
                message.msg_iov = iov.baseAddress
                message.msg_iovlen = iov.count
                return sendmsg(c.descriptor, &message, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    waitForWritable(c)
                    return true
                }
                return false
            }
            var remaining = written
            while remaining > 0, let frame = c.queue.first {
                let wire = frame.wire
                if remaining >= wire.count {
                    remaining -= wire.count
                    c.queue.removeFirst()
                    continue
                }
                // Cut short: lws takes (and copies) the rest and sends it before anything else.
                // LWS_WRITE_HTTP is LWS_WRITE_RAW: the bytes as they are, nothing written before
                // them (lws_issue_raw), so the shared frame is passed as it is.
                let rest = UnsafeRawBufferPointer(rebasing: wire[remaining...])
                let handed = lws_write(c.wsi, UnsafeMutablePointer(mutating: rest.baseAddress!.assumingMemoryBound(to: UInt8.self)), rest.count, LWS_WRITE_HTTP)
                if handed < 0 { return false }
                c.queue.removeFirst()
                remaining = 0
                waitForWritable(c)
                c.queue.compact()
                return true
            }
            if written < offered {
                waitForWritable(c) // the socket is full
                c.queue.compact()
                return true
            }
        }
        c.queue.compact()
        // A close waiting for the queue to drain goes out from the writable callback.
        if c.closeRequest != nil { waitForWritable(c) }
        return true
    }

    /// The socket failed: nothing more is written (a frame partly on the wire must never be
    /// started again), and lws drops the connection on its own schedule.
    func fail(_ c: WebSocketConnection) {
        c.failed = true
        c.queue.removeAll(keepingCapacity: false)
        lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
    }

    func waitForWritable(_ c: WebSocketConnection) {
        c.awaitingWritable = true
        lws_callback_on_writable(c.wsi)
    }
}
