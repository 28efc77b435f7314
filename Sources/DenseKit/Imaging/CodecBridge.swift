import CImageCodecs
import Foundation

/// The only place where DenseKit's imaging code touches CImageCodecs and raw
/// pointers. Each call returns the C status, the message and the result; the
/// callers turn failures into ``ImageError``.
enum CodecBridge {
    /// Result of one C call: `status == DK_OK` means success.
    struct Outcome<Value> {
        var status: Int32
        var message: String
        var value: Value?
    }

    static let messageLength = Int(DK_MSG_LEN)

    /// Header only; no pixel memory.
    static func probe(_ data: Data) -> Outcome<dk_image_info> {
        var info = dk_image_info()
        var msg = [CChar](repeating: 0, count: messageLength)
        let status = data.withUnsafeBytes { raw -> Int32 in
            msg.withUnsafeMutableBufferPointer { m in
                dk_image_probe(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, &info,
                               m.baseAddress, m.count)
            }
        }
        return Outcome(status: status, message: string(msg), value: status == DK_OK ? info : nil)
    }

    /// Full RGB8 decode in stored orientation into a new array of `byteCount` bytes
    /// (`byteCount` must be stored width * height * 3; the C side re-checks it and
    /// `maxPixels`).
    static func decodeRGB8(_ data: Data, maxPixels: Int, byteCount: Int) -> Outcome<([UInt8], dk_image_info)> {
        var info = dk_image_info()
        var msg = [CChar](repeating: 0, count: messageLength)
        var out = [UInt8](repeating: 0, count: byteCount)
        let status = data.withUnsafeBytes { raw -> Int32 in
            out.withUnsafeMutableBufferPointer { o in
                msg.withUnsafeMutableBufferPointer { m in
                    dk_image_decode_rgb8(raw.bindMemory(to: UInt8.self).baseAddress, raw.count,
                                         UInt64(max(0, maxPixels)), o.baseAddress, o.count, &info,
                                         m.baseAddress, m.count)
                }
            }
        }
        return Outcome(status: status, message: string(msg), value: status == DK_OK ? (out, info) : nil)
    }

    /// Raw gray / palette-index samples of a PNG into a new array of `count` samples.
    static func decodeSamples(_ data: Data, maxPixels: Int, count: Int) -> Outcome<([UInt16], dk_image_info)> {
        var info = dk_image_info()
        var msg = [CChar](repeating: 0, count: messageLength)
        var out = [UInt16](repeating: 0, count: count)
        let status = data.withUnsafeBytes { raw -> Int32 in
            out.withUnsafeMutableBufferPointer { o in
                msg.withUnsafeMutableBufferPointer { m in
                    dk_png_decode_samples(raw.bindMemory(to: UInt8.self).baseAddress, raw.count,
                                          UInt64(max(0, maxPixels)), o.baseAddress, o.count, &info,
                                          m.baseAddress, m.count)
                }
            }
        }
        return Outcome(status: status, message: string(msg), value: status == DK_OK ? (out, info) : nil)
    }

    /// PNG encode of `bytes` (layout given by `kind`) into memory.
    static func encodePNG(kind: Int32, width: UInt32, height: UInt32, bytes: UnsafeRawBufferPointer,
                          palette: [UInt8]) -> Outcome<Data> {
        var msg = [CChar](repeating: 0, count: messageLength)
        var outPtr: UnsafeMutablePointer<UInt8>? = nil
        var outLen = 0
        let paletteCount = Int32(palette.count / 3)
        let status = palette.withUnsafeBufferPointer { pal -> Int32 in
            msg.withUnsafeMutableBufferPointer { m in
                dk_png_encode_mem(kind, width, height, bytes.baseAddress, bytes.count,
                                  palette.isEmpty ? nil : pal.baseAddress, palette.isEmpty ? 0 : paletteCount,
                                  &outPtr, &outLen, m.baseAddress, m.count)
            }
        }
        defer { dk_free(outPtr) }
        guard status == DK_OK, let p = outPtr else {
            return Outcome(status: status == DK_OK ? Int32(DK_ERR_NOMEM) : status,
                           message: status == DK_OK ? "no output" : string(msg), value: nil)
        }
        return Outcome(status: status, message: "", value: Data(bytes: p, count: outLen))
    }

    /// The NUL-terminated message in `buffer` as a String (invalid UTF-8 repaired).
    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The C struct as an ``ImageInfo``.
    static func imageInfo(_ c: dk_image_info) -> ImageInfo {
        let name = withUnsafeBytes(of: c.color_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return ImageInfo(format: c.format == Int32(DK_FORMAT_JPEG) ? .jpeg : .png,
                         colorType: name,
                         bitDepth: Int(c.bit_depth),
                         channels: Int(c.channels),
                         isInterlaced: c.interlaced != 0,
                         isArithmeticCoded: c.arithmetic != 0,
                         storedWidth: Int(c.width),
                         storedHeight: Int(c.height),
                         orientation: Int(c.orientation))
    }
}
