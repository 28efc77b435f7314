import DenseKit
import Foundation
import XCTest

/// PNG encode round trips through the decoder.
final class ImagingPNGEncoderTests: XCTestCase {
    private func pattern(_ n: Int, seed: Int) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: ($0 &* 2654435761 &+ seed &* 97) >> 7) }
    }

    func testRGB8RoundTrip() throws {
        let (w, h) = (37, 23)
        let px = pattern(w * h * 3, seed: 1)
        let png = try PNGEncoder.encodeRGB8(width: w, height: h, pixels: px)
        XCTAssertEqual(ImageFormat.detect(png), .png)
        let (img, info) = try ImageDecoder.decode(data: png, name: "rgb.png")
        XCTAssertEqual(info.colorType, "rgb")
        XCTAssertEqual(info.bitDepth, 8)
        XCTAssertEqual(img.width, w)
        XCTAssertEqual(img.height, h)
        XCTAssertEqual(img.pixels, px)
        let image = try RGBImage(width: w, height: h, pixels: px)
        XCTAssertEqual(try PNGEncoder.encode(image), png)
    }

    func testGray8RoundTrip() throws {
        let (w, h) = (17, 9)
        let px = pattern(w * h, seed: 2)
        let png = try PNGEncoder.encodeGray8(width: w, height: h, pixels: px)
        let (img, info) = try ImageDecoder.decode(data: png, name: "g8.png")
        XCTAssertEqual(info.colorType, "gray")
        XCTAssertEqual(info.bitDepth, 8)
        XCTAssertEqual(img.pixels, px.flatMap { [$0, $0, $0] })
        let g = try ImageDecoder.decodeGray(data: png, name: "g8.png")
        XCTAssertEqual(g.bitDepth, 8)
        XCTAssertEqual(g.values, px.map(UInt16.init))
    }

    func testGray16RoundTrip() throws {
        let (w, h) = (13, 7)
        var values = (0..<(w * h)).map { UInt16(truncatingIfNeeded: $0 &* 40503 &+ 17) }
        values[0] = 0; values[1] = 1; values[2] = 255; values[3] = 256; values[4] = 0x1234; values[5] = 65535
        let png = try PNGEncoder.encodeGray16(width: w, height: h, values: values)
        let g = try ImageDecoder.decodeGray(data: png, name: "g16.png")
        XCTAssertEqual(g.width, w)
        XCTAssertEqual(g.height, h)
        XCTAssertEqual(g.bitDepth, 16)
        XCTAssertEqual(g.values, values)
        XCTAssertEqual(g.value(x: 4, y: 0), 0x1234)
        // Big-endian in the file: first sample row starts after the filter byte; check via the >> 8 rule.
        let (img, info) = try ImageDecoder.decode(data: png, name: "g16.png")
        XCTAssertEqual(info.bitDepth, 16)
        XCTAssertEqual(img.pixels, values.flatMap { v -> [UInt8] in let b = UInt8(v >> 8); return [b, b, b] })
    }

    func testPaletteRoundTrip() throws {
        let (w, h) = (11, 5)
        let palette: [(UInt8, UInt8, UInt8)] = [(0, 0, 0), (128, 64, 128), (255, 0, 7), (1, 2, 3), (60, 40, 222)]
        let idx = (0..<(w * h)).map { UInt8($0 % palette.count) }
        let png = try PNGEncoder.encodePalette(width: w, height: h, indices: idx, palette: palette)
        let (img, info) = try ImageDecoder.decode(data: png, name: "pal.png")
        XCTAssertEqual(info.colorType, "palette")
        XCTAssertEqual(img.pixels, idx.flatMap { let c = palette[Int($0)]; return [c.0, c.1, c.2] })
        let g = try ImageDecoder.decodeGray(data: png, name: "pal.png")
        XCTAssertEqual(g.values, idx.map(UInt16.init))
        let png2 = try PNGEncoder.encodePalette(width: w, height: h, indices: idx,
                                                palette: palette.map { [$0.0, $0.1, $0.2] })
        XCTAssertEqual(png2, png)
    }

    func testInvalidArgumentsThrow() {
        func isInvalid(_ body: @autoclosure () throws -> Data, _ line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) {
                guard case ImageError.invalidArgument = $0 else { return XCTFail("\($0)", line: line) }
            }
        }
        isInvalid(try PNGEncoder.encodeRGB8(width: 2, height: 2, pixels: [UInt8](repeating: 0, count: 11)))
        isInvalid(try PNGEncoder.encodeRGB8(width: 0, height: 2, pixels: []))
        isInvalid(try PNGEncoder.encodeRGB8(width: -1, height: -3, pixels: [0, 0, 0]))
        isInvalid(try PNGEncoder.encodeGray8(width: 3, height: 1, pixels: [1, 2]))
        isInvalid(try PNGEncoder.encodeGray16(width: 1, height: 2, values: [1]))
        isInvalid(try PNGEncoder.encodePalette(width: 2, height: 1, indices: [0, 2], palette: [(0, 0, 0), (1, 1, 1)]))
        isInvalid(try PNGEncoder.encodePalette(width: 1, height: 1, indices: [0], palette: [(UInt8, UInt8, UInt8)]()))
        isInvalid(try PNGEncoder.encodePalette(width: 1, height: 1, indices: [0],
                                               palette: [(UInt8, UInt8, UInt8)](repeating: (0, 0, 0), count: 257)))
        isInvalid(try PNGEncoder.encodePalette(width: 1, height: 1, indices: [0], palette: [[1, 2]]))
        XCTAssertThrowsError(try RGBImage(width: 2, height: 2, pixels: [1, 2, 3]))
        XCTAssertThrowsError(try RGBImage(width: 0, height: 2))
        XCTAssertThrowsError(try GrayImage(width: 2, height: 1, bitDepth: 4, values: [3, 16]))
    }

    func testRGBImageHelpers() throws {
        let img = try RGBImage(width: 2, height: 2, pixels: [0, 0, 0, 10, 20, 30, 100, 100, 100, 2, 4, 6])
        XCTAssertEqual(img.channelMeans(), [28, 31, 34])
        XCTAssertEqual(img.channelMeans(x: 1, y: 0, width: 1, height: 2), [6, 12, 18])
        XCTAssertEqual(img.channelMeans(x: 5, y: 5, width: 1, height: 1), [0, 0, 0])
        XCTAssertEqual(img.pixel(x: 1, y: 0)?.g, 20)
        XCTAssertNil(img.pixel(x: 2, y: 0))
        let red = try RGBImage(width: 3, height: 1, fill: (255, 0, 1))
        XCTAssertEqual(red.pixels, [255, 0, 1, 255, 0, 1, 255, 0, 1])
    }
}
