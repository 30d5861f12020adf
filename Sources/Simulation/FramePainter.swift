/// Paints stand-in camera frames for the simulator and tests: a road-coloured background with
/// the detection boxes outlined, encoded as a PNG (RGB, uncompressed deflate blocks, so no
/// compression library is needed; a 192×108 frame is about 62 KB).
public enum FramePainter {
    /// A box in frame pixels: `[x1, y1, x2, y2]` as the detections carry them.
    public typealias Box = (x1: Int, y1: Int, x2: Int, y2: Int)

    /// A PNG of `width`×`height` pixels with `boxes` (given in `scale`-times larger coordinates,
    /// e.g. 1920×1080 detections on a 192×108 frame with scale 10) outlined.
    public static func png(width: Int, height: Int, boxes: [Box], scale: Int = 1, seed: UInt64 = 1) -> [UInt8] {
        precondition(width > 0 && height > 0 && width <= 4096 && height <= 4096, "frame size out of range")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let tint = UInt8(truncatingIfNeeded: seed % 40)
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                let lane = (x / 8 + y / 24) % 12 == 0 && y > height / 3
                pixels[i] = lane ? 220 : 60 &+ UInt8(y * 40 / height) &+ tint
                pixels[i + 1] = lane ? 220 : 64 &+ UInt8(y * 40 / height)
                pixels[i + 2] = lane ? 200 : 70 &+ UInt8(x * 30 / width)
            }
        }
        for box in boxes {
            let x1 = max(0, min(width - 1, box.x1 / scale)), x2 = max(0, min(width - 1, box.x2 / scale))
            let y1 = max(0, min(height - 1, box.y1 / scale)), y2 = max(0, min(height - 1, box.y2 / scale))
            func plot(_ x: Int, _ y: Int) {
                let i = (y * width + x) * 3
                pixels[i] = 255
                pixels[i + 1] = 200
                pixels[i + 2] = 0
            }
            for x in min(x1, x2)...max(x1, x2) { plot(x, y1); plot(x, y2) }
            for y in min(y1, y2)...max(y1, y2) { plot(x1, y); plot(x2, y) }
        }
        return encodePNG(width: width, height: height, rgb: pixels)
    }

    /// Encodes 8-bit RGB pixels (row-major) as a PNG.
    public static func encodePNG(width: Int, height: Int, rgb: [UInt8]) -> [UInt8] {
        precondition(rgb.count == width * height * 3, "one RGB triple per pixel")
        // Raw scanlines: filter byte 0, then the row.
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (width * 3 + 1))
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: rgb[(y * width * 3)..<((y + 1) * width * 3)])
        }
        // zlib stream of stored (uncompressed) deflate blocks of at most 65535 bytes.
        var zlib: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, raw.count - offset)
            zlib.append(offset + length == raw.count ? 1 : 0)
            zlib.append(UInt8(length & 0xFF)); zlib.append(UInt8(length >> 8))
            zlib.append(UInt8(~length & 0xFF)); zlib.append(UInt8((~length >> 8) & 0xFF))
            zlib.append(contentsOf: raw[offset..<(offset + length)])
            offset += length
        } while offset < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in raw {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        appendBigEndian(b << 16 | a, to: &zlib)

        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        appendBigEndian(UInt32(width), to: &header)
        appendBigEndian(UInt32(height), to: &header)
        header += [8, 2, 0, 0, 0] // 8-bit depth, RGB, deflate, no filter method, no interlace
        appendChunk("IHDR", header, to: &png)
        appendChunk("IDAT", zlib, to: &png)
        appendChunk("IEND", [], to: &png)
        return png
    }

    private static func appendBigEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to png: inout [UInt8]) {
        appendBigEndian(UInt32(data.count), to: &png)
        let typed = Array(type.utf8) + data
        png += typed
        appendBigEndian(crc32(typed), to: &png)
    }

    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = crcTable[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
