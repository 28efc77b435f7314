import DenseKit
import Foundation
import XCTest

/// Every entry of `shared/data/photos/manifest.json` against the decoder.
final class ImagingPhotoManifestTests: XCTestCase {
    func testEveryManifestEntry() throws {
        let data = try ImagingTestData.requireData()
        let photos = data.appendingPathComponent("photos")
        let manifest = try ImagingTestData.load(ImagingTestData.PhotoManifest.self,
                                                photos.appendingPathComponent("manifest.json"))
        XCTAssertGreaterThanOrEqual(manifest.files.count, 62)
        var decoded = 0, refused = 0
        for e in manifest.files {
            let path = photos.appendingPathComponent(e.file).path
            if e.must_fail == true {
                do {
                    _ = try ImageDecoder.decode(path: path)
                    XCTFail("\(e.file): decoded but must fail")
                } catch let err as ImageError {
                    refused += 1
                    XCTAssertFalse(err.description.contains("\n"), "\(e.file): multi-line message")
                    XCTAssertTrue(err.description.contains(e.file), "\(e.file): message does not name the file: \(err)")
                } catch {
                    XCTFail("\(e.file): not an ImageError: \(error)")
                }
                continue
            }
            let result: (image: RGBImage, info: ImageInfo)
            do {
                result = try ImageDecoder.decode(path: path)
            } catch {
                XCTFail("\(e.file): \(error)")
                continue
            }
            decoded += 1
            let (img, info) = result
            XCTAssertEqual(info.format.rawValue, e.format, e.file)
            XCTAssertEqual(info.storedWidth, e.stored_width, e.file)
            XCTAssertEqual(info.storedHeight, e.stored_height, e.file)
            XCTAssertEqual(info.orientation, e.orientation, e.file)
            XCTAssertEqual(info.width, e.width, e.file)
            XCTAssertEqual(info.height, e.height, e.file)
            XCTAssertEqual(img.width, e.width, e.file)
            XCTAssertEqual(img.height, e.height, e.file)
            XCTAssertEqual(img.pixels.count, img.width * img.height * 3, e.file)
            let tol = e.tolerance ?? 0.01
            if let want = e.mean_rgb {
                let got = img.channelMeans()
                XCTAssertLessThanOrEqual(ImagingTestData.maxDiff(got, want), tol, "\(e.file) mean_rgb \(got) vs \(want)")
            } else {
                XCTFail("\(e.file): no mean_rgb in manifest")
            }
            if let want = e.mean_rgb_top_left {
                let got = img.channelMeans(x: 0, y: 0, width: (img.width + 1) / 2, height: (img.height + 1) / 2)
                XCTAssertLessThanOrEqual(ImagingTestData.maxDiff(got, want), tol,
                                         "\(e.file) mean_rgb_top_left \(got) vs \(want)")
            } else {
                XCTFail("\(e.file): no mean_rgb_top_left in manifest")
            }
            // probe agrees with decode and allocates nothing
            let probed = try ImageDecoder.probe(path: path)
            XCTAssertEqual(probed, info, e.file)
        }
        XCTAssertEqual(decoded, 55)
        XCTAssertEqual(refused, 7)
    }

    /// `applyOrientation: false` returns the stored image; its mean equals the upright one.
    func testStoredOrientationOption() throws {
        let photos = try ImagingTestData.requireData().appendingPathComponent("photos")
        let path = photos.appendingPathComponent("exif_portrait_6.jpg").path
        let upright = try ImageDecoder.decode(path: path)
        let stored = try ImageDecoder.decode(path: path, options: ImageDecodeOptions(applyOrientation: false))
        XCTAssertEqual(upright.info.orientation, 6)
        XCTAssertEqual(stored.image.width, upright.info.storedWidth)
        XCTAssertEqual(stored.image.height, upright.info.storedHeight)
        XCTAssertEqual(stored.image.width, upright.image.height)
        XCTAssertEqual(stored.image.applyingOrientation(6), upright.image)
        XCTAssertLessThan(ImagingTestData.maxDiff(stored.image.channelMeans(), upright.image.channelMeans()), 1e-9)
    }

    /// Format comes from the bytes, not the name; the info fields are filled.
    func testFormatDetectedFromBytesAndInfoFields() throws {
        let photos = try ImagingTestData.requireData().appendingPathComponent("photos")
        let jpeg = try Data(contentsOf: photos.appendingPathComponent("ljt_testorig.jpg"))
        let (img, info) = try ImageDecoder.decode(data: jpeg, name: "misnamed.png")
        XCTAssertEqual(info.format, .jpeg)
        XCTAssertEqual(info.colorType, "ycbcr")
        XCTAssertEqual(img.width, 227)
        XCTAssertEqual(ImageFormat.detect(jpeg), .jpeg)

        func probe(_ f: String) throws -> ImageInfo { try ImageDecoder.probe(path: photos.appendingPathComponent(f).path) }
        let cases: [(String, String, Int, Bool, Bool)] = [
            ("pngsuite_basn0g01.png", "gray", 1, false, false),
            ("pngsuite_basn4a16.png", "gray+alpha", 16, false, false),
            ("pngsuite_basn2c08.png", "rgb", 8, false, false),
            ("pngsuite_basn6a08.png", "rgba", 8, false, false),
            ("pngsuite_basi3p08.png", "palette", 8, true, false),
            ("ljt_testorig_progressive.jpg", "ycbcr", 8, true, false),
            ("ljt_testimgari.jpg", "ycbcr", 8, false, true),
            ("pillow_hopper_gray.jpg", "gray", 8, false, false),
            ("made_chelsea_cmyk.jpg", "cmyk", 8, false, false),
            ("pillow_pil_sample_cmyk.jpg", "ycck", 8, false, false),
        ]
        for (f, color, depth, interlaced, arith) in cases {
            let i = try probe(f)
            XCTAssertEqual(i.colorType, color, f)
            XCTAssertEqual(i.bitDepth, depth, f)
            XCTAssertEqual(i.isInterlaced, interlaced, f)
            XCTAssertEqual(i.isArithmeticCoded, arith, f)
        }
    }

    /// 16-bit gray PNG depth maps through the raw-sample path, against the depth manifest.
    func testDepthPNGRawSamples() throws {
        let eval = try ImagingTestData.requireData().appendingPathComponent("depth-eval")
        struct Frame: Decodable {
            let depth: String; let width: Int; let height: Int
            let depth_min_mm: Int; let depth_max_mm: Int; let valid_fraction: Double
        }
        struct Manifest: Decodable { let frames: [Frame] }
        guard let m = try? ImagingTestData.load(Manifest.self, eval.appendingPathComponent("manifest.json")),
              let f = m.frames.first else { throw XCTSkip("depth-eval manifest not readable") }
        let g = try ImageDecoder.decodeGray(path: eval.appendingPathComponent(f.depth).path)
        XCTAssertEqual(g.width, f.width)
        XCTAssertEqual(g.height, f.height)
        XCTAssertEqual(g.bitDepth, 16)
        let valid = g.values.filter { $0 != 0 }
        XCTAssertEqual(valid.min().map(Int.init), f.depth_min_mm)
        XCTAssertEqual(valid.max().map(Int.init), f.depth_max_mm)
        XCTAssertEqual(Double(valid.count) / Double(g.values.count), f.valid_fraction, accuracy: 1e-4)
    }

    /// decodeGray on raw PngSuite gray files gives unscaled samples; RGB files are refused.
    func testDecodeGrayRawValues() throws {
        let photos = try ImagingTestData.requireData().appendingPathComponent("photos")
        for (f, depth) in [("pngsuite_basn0g01.png", 1), ("pngsuite_basn0g02.png", 2), ("pngsuite_basn0g04.png", 4),
                           ("pngsuite_basn0g08.png", 8), ("pngsuite_basn0g16.png", 16), ("pngsuite_basi0g16.png", 16),
                           ("pngsuite_basn3p04.png", 4), ("pngsuite_s07i3p02.png", 2)] {
            let path = photos.appendingPathComponent(f).path
            let g = try ImageDecoder.decodeGray(path: path)
            XCTAssertEqual(g.bitDepth, depth, f)
            let rgb = try ImageDecoder.decode(path: path).image
            XCTAssertEqual(g.values.count, rgb.width * rgb.height, f)
            XCTAssertLessThan(Int(g.values.max() ?? 0), 1 << depth, f)
            if f.contains("n0g") || f.contains("i0g") {
                // RGB8 rule: scaled / reduced, replicated
                for (i, v) in g.values.enumerated() {
                    let want: UInt8 = depth == 16 ? UInt8(v >> 8) : UInt8(Int(v) * 255 / ((1 << depth) - 1))
                    if rgb.pixels[3 * i] != want || rgb.pixels[3 * i + 1] != want || rgb.pixels[3 * i + 2] != want {
                        XCTFail("\(f) pixel \(i): raw \(v) -> rgb \(rgb.pixels[3 * i]) expected \(want)")
                        break
                    }
                }
            }
        }
        XCTAssertThrowsError(try ImageDecoder.decodeGray(path: photos.appendingPathComponent("pngsuite_basn2c08.png").path)) {
            guard case ImageError.unsupported = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try ImageDecoder.decodeGray(path: photos.appendingPathComponent("ljt_testorig.jpg").path)) {
            guard case ImageError.unsupported = $0 else { return XCTFail("\($0)") }
        }
    }
}
