import DenseKit
import Foundation
import XCTest

/// EXIF orientation parsing on synthetic APP1 segments inserted into a real JPEG:
/// both byte orders, and malformed segments (ignored, orientation 1).
final class ImagingExifOrientationTests: XCTestCase {
    /// `FF E1 <len> "Exif\0\0" <TIFF>`; `tiff` is the TIFF block.
    private func app1(_ tiff: [UInt8]) -> [UInt8] {
        let payload = Array("Exif".utf8) + [0, 0] + tiff
        let len = payload.count + 2
        return [0xFF, 0xE1, UInt8(len >> 8), UInt8(len & 0xFF)] + payload
    }

    /// A TIFF block with one IFD0 entry (tag 0x0112, given type, count 1, value).
    private func tiff(bigEndian: Bool, value: UInt16, type: UInt16 = 3, ifdOffset: UInt32 = 8,
                      entryCount: UInt16 = 1) -> [UInt8] {
        func u16(_ v: UInt16) -> [UInt8] { bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) -> [UInt8] {
            let b = [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
            return bigEndian ? b : b.reversed()
        }
        var t: [UInt8] = bigEndian ? Array("MM".utf8) : Array("II".utf8)
        t += u16(42) + u32(ifdOffset)
        t += u16(entryCount)
        t += u16(0x0112) + u16(type) + u32(1) + u16(value) + u16(0)
        t += u32(0)
        return t
    }

    private func jpeg(with segment: [UInt8]) throws -> Data {
        let photos = try ImagingTestData.requireData().appendingPathComponent("photos")
        let base = try Data(contentsOf: photos.appendingPathComponent("ljt_testorig.jpg"))
        var d = Data(base.prefix(2)) // SOI
        d.append(contentsOf: segment)
        d.append(base.dropFirst(2))
        return d
    }

    func testBothByteOrders() throws {
        let stored = try ImageDecoder.decode(data: jpeg(with: []), name: "plain.jpg").image
        for (big, o) in [(false, 8), (true, 3), (false, 6), (true, 5), (false, 2), (true, 7), (false, 4)] {
            let d = try jpeg(with: app1(tiff(bigEndian: big, value: UInt16(o))))
            let (img, info) = try ImageDecoder.decode(data: d, name: "exif.jpg")
            XCTAssertEqual(info.orientation, o, "big-endian \(big)")
            XCTAssertEqual(info.storedWidth, 227)
            XCTAssertEqual(info.width, o >= 5 ? 149 : 227)
            XCTAssertEqual(img, stored.applyingOrientation(o), "orientation \(o)")
        }
    }

    func testMalformedExifIsIgnored() throws {
        let cases: [(String, [UInt8])] = [
            ("offset past the end", app1(tiff(bigEndian: false, value: 6, ifdOffset: 0xFFFF_FF00))),
            ("offset into the header", app1(tiff(bigEndian: true, value: 6, ifdOffset: 2))),
            ("entry cut off", app1(Array(tiff(bigEndian: false, value: 6).prefix(8 + 2 + 9)))),
            ("value 9", app1(tiff(bigEndian: false, value: 9))),
            ("value 0", app1(tiff(bigEndian: true, value: 0))),
            ("wrong type", app1(tiff(bigEndian: false, value: 6, type: 2))),
            ("truncated TIFF", app1(Array("II".utf8) + [42])),
            ("bad byte order", app1(Array("XX".utf8) + [0, 42, 0, 0, 0, 8, 0, 0])),
            ("no Exif header", [0xFF, 0xE1, 0x00, 0x08] + Array("Oops".utf8) + [0, 0]),
        ]
        for (what, seg) in cases {
            let (img, info) = try ImageDecoder.decode(data: jpeg(with: seg), name: what)
            XCTAssertEqual(info.orientation, 1, what)
            XCTAssertEqual(img.width, 227, what)
        }
        // An entry count larger than the data: the entries that are there are still read.
        let d = try jpeg(with: app1(tiff(bigEndian: false, value: 6, entryCount: 0xFFFF)))
        XCTAssertEqual(try ImageDecoder.probe(data: d, name: "count").orientation, 6)
    }
}
