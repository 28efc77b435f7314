import DenseKit
import XCTest

/// EXIF orientation transforms against compositions of mirror and transpose.
final class ImagingOrientationTests: XCTestCase {
    private typealias Grid = [[Int]] // [row][col] -> pixel id

    private func transpose(_ g: Grid) -> Grid {
        (0..<g[0].count).map { c in g.map { $0[c] } }
    }
    private func mirrorLR(_ g: Grid) -> Grid { g.map { Array($0.reversed()) } }
    private func mirrorTB(_ g: Grid) -> Grid { Array(g.reversed()) }

    /// Pixel id -> (id, id + 100, id + 200), row-major.
    private func rgb(_ g: Grid) -> [UInt8] {
        var out: [UInt8] = []
        for row in g {
            for id in row {
                out.append(UInt8(id))
                out.append(UInt8(id + 100))
                out.append(UInt8(id + 200))
            }
        }
        return out
    }

    func testAllEightOrientations() throws {
        let (w, h) = (4, 3)
        let stored: Grid = (0..<h).map { r in (0..<w).map { c in r * w + c } }
        let expected: [Int: Grid] = [
            1: stored,
            2: mirrorLR(stored),
            3: mirrorTB(mirrorLR(stored)),
            4: mirrorTB(stored),
            5: transpose(stored),
            6: mirrorLR(transpose(stored)),            // rotate 90 clockwise
            7: transpose(mirrorTB(mirrorLR(stored))),  // rotate 180, then transpose
            8: mirrorTB(transpose(stored)),            // rotate 90 counter-clockwise
        ]
        let pixels = rgb(stored)
        let image = try RGBImage(width: w, height: h, pixels: pixels)
        for o in 1...8 {
            let g = try XCTUnwrap(expected[o])
            let out = image.applyingOrientation(o)
            XCTAssertEqual(out.width, g[0].count, "orientation \(o)")
            XCTAssertEqual(out.height, g.count, "orientation \(o)")
            let want = rgb(g)
            XCTAssertEqual(out.pixels, want, "orientation \(o)")
        }
        // rotate 90 clockwise: the stored bottom-left pixel becomes the top-left one
        XCTAssertEqual(image.applyingOrientation(6).pixel(x: 0, y: 0)?.r, UInt8((h - 1) * w))
        XCTAssertEqual(image.applyingOrientation(0), image)
        XCTAssertEqual(image.applyingOrientation(9), image)
    }
}
