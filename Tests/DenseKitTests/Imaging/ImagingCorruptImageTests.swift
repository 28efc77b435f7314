import DenseKit
import Foundation
import XCTest

/// Every PNG/JPEG file listed in `shared/data/corrupt/manifest.json` must be refused
/// with an ImageError; the controls must decode.
final class ImagingCorruptImageTests: XCTestCase {
    func testEveryCorruptImageIsRefused() throws {
        let corrupt = try ImagingTestData.requireData().appendingPathComponent("corrupt")
        let manifest = try ImagingTestData.load(ImagingTestData.CorruptManifest.self,
                                                corrupt.appendingPathComponent("manifest.json"))
        let images = manifest.files.filter { $0.file.hasSuffix(".png") || $0.file.hasSuffix(".jpg") }
        XCTAssertEqual(images.count, 9)
        for e in images {
            XCTAssertEqual(e.must_fail, true, e.file)
            let path = corrupt.appendingPathComponent(e.file).path
            do {
                let r = try ImageDecoder.decode(path: path)
                XCTFail("\(e.file): decoded \(r.image.width)x\(r.image.height) but must fail")
            } catch let err as ImageError {
                let line = err.description
                XCTAssertFalse(line.contains("\n"), "\(e.file): \(line)")
                XCTAssertTrue(line.contains(e.file), "\(e.file): message does not name the file: \(line)")
            } catch {
                XCTFail("\(e.file): not an ImageError: \(error)")
            }
        }
    }

    func testSpecificCorruptionsGiveTheRightError() throws {
        let corrupt = try ImagingTestData.requireData().appendingPathComponent("corrupt")
        func err(_ f: String) -> ImageError? {
            do { _ = try ImageDecoder.decode(path: corrupt.appendingPathComponent(f).path); return nil }
            catch { return error as? ImageError }
        }
        guard case let .tooLarge(_, w, h, limit)? = err("png_bomb_100000x100000.png") else {
            return XCTFail("bomb not refused as too large")
        }
        XCTAssertEqual([w, h, limit], [100_000, 100_000, 100_000_000])
        XCTAssertTrue((err("png_bomb_100000x100000.png")?.description ?? "")
            .hasSuffix("png_bomb_100000x100000.png: 100000x100000 pixels exceeds the limit of 100000000 pixels"))
        guard case let .tooLarge(_, jw, jh, _)? = err("jpeg_huge_65500x65500.jpg") else {
            return XCTFail("huge JPEG not refused as too large")
        }
        XCTAssertEqual([jw, jh], [65_500, 65_500])
        guard case .unknownFormat? = err("png_is_text.png") else { return XCTFail("text file") }
        guard case let .corruptData(_, r1)? = err("png_empty.png") else { return XCTFail("empty file") }
        XCTAssertTrue(r1.contains("empty"), r1)
        guard case let .corruptData(_, r2)? = err("png_bad_crc_idat.png") else { return XCTFail("IDAT CRC") }
        XCTAssertTrue(r2.contains("CRC"), r2)
        guard case let .corruptData(_, r3)? = err("png_bad_crc_ihdr.png") else { return XCTFail("IHDR CRC") }
        XCTAssertTrue(r3.contains("CRC"), r3)
        guard case let .corruptData(_, r4)? = err("jpeg_truncated_in_scan.jpg") else { return XCTFail("truncated JPEG") }
        XCTAssertTrue(r4.contains("Premature end"), r4)
        guard case let .corruptData(_, r5)? = err("jpeg_bad_huffman_table.jpg") else { return XCTFail("Huffman") }
        XCTAssertTrue(r5.contains("Huffman"), r5)
        guard case .corruptData? = err("png_truncated_in_idat.png") else { return XCTFail("truncated PNG") }

        // The header of the bomb is readable; only decoding is refused.
        let info = try ImageDecoder.probe(path: corrupt.appendingPathComponent("png_bomb_100000x100000.png").path)
        XCTAssertEqual(info.storedWidth, 100_000)
        XCTAssertEqual(info.colorType, "rgba")
    }

    func testControlsDecode() throws {
        let data = try ImagingTestData.requireData()
        let png = try ImageDecoder.decode(path: data.appendingPathComponent("corrupt-controls/png_valid_control.png").path)
        XCTAssertEqual(png.image.width, 64)
        XCTAssertEqual(png.image.height, 48)
        let jpg = try ImageDecoder.decode(path: data.appendingPathComponent("photos/ljt_testorig.jpg").path)
        XCTAssertEqual(jpg.image.width, 227)
        XCTAssertEqual(jpg.image.height, 149)
    }

    func testPixelLimitAndBadInputs() throws {
        let photos = try ImagingTestData.requireData().appendingPathComponent("photos")
        let path = photos.appendingPathComponent("skimage_chelsea.png").path
        XCTAssertThrowsError(try ImageDecoder.decode(path: path, options: ImageDecodeOptions(maxPixels: 451 * 300 - 1))) {
            guard case ImageError.tooLarge(_, 451, 300, 135_299) = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertNoThrow(try ImageDecoder.decode(path: path, options: ImageDecodeOptions(maxPixels: 451 * 300)))
        XCTAssertThrowsError(try ImageDecoder.decode(path: path, options: ImageDecodeOptions(maxPixels: 0))) {
            guard case ImageError.invalidArgument = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try ImageDecoder.decode(path: "/nonexistent/densekit/x.png")) {
            guard case ImageError.unreadableFile = $0 else { return XCTFail("\($0)") }
            XCTAssertEqual("\($0)", "cannot read /nonexistent/densekit/x.png: no such file")
        }
        XCTAssertThrowsError(try ImageDecoder.decode(path: photos.path)) {
            guard case ImageError.unreadableFile = $0 else { return XCTFail("\($0)") }
        }
        // Truncations of a valid PNG and JPEG at many points: always an error, never a crash.
        for f in ["pngsuite_basi6a16.png", "ljt_testorig_progressive.jpg", "pillow_pil_sample_cmyk.jpg",
                  "pillow_hopper_gray.jpg"] {
            let whole = try Data(contentsOf: photos.appendingPathComponent(f))
            var cut = 1
            while cut < whole.count {
                XCTAssertThrowsError(try ImageDecoder.decode(data: whole.prefix(cut), name: "\(f)[..\(cut)]"))
                cut += max(1, whole.count / 97)
            }
        }
    }

    /// Flipped bytes anywhere in a file: the decoder may accept or refuse, but must not crash.
    func testByteFlipsDoNotCrash() throws {
        let photos = try ImagingTestData.requireData().appendingPathComponent("photos")
        for f in ["pngsuite_basn2c08.png", "pngsuite_basi3p08.png", "ljt_testorig.jpg", "ljt_testimgari.jpg",
                  "ljt_testorig_progressive.jpg", "pillow_pil_sample_cmyk.jpg"] {
            let whole = try Data(contentsOf: photos.appendingPathComponent(f))
            let limit = min(whole.count, 4096)
            var i = 0
            while i < limit {
                var d = whole
                d[d.startIndex + i] ^= 0xA5
                _ = try? ImageDecoder.decode(data: d, name: f)
                i += max(1, limit / 300)
            }
        }
    }

    /// A FIFO (or socket or device) is refused before it is opened: reading one could block forever.
    func testNonRegularFileIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dk-fifo-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe.png").path
        guard mkfifo(fifo, 0o600) == 0 else { throw XCTSkip("mkfifo is not available here") }
        XCTAssertThrowsError(try ImageDecoder.decode(path: fifo)) { e in
            guard case .unreadableFile(_, let reason)? = e as? ImageError else { return XCTFail("\(e)") }
            XCTAssertTrue(reason.contains("not a regular file"), reason)
        }
    }
}
