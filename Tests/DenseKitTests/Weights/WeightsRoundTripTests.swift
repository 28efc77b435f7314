import Foundation
import XCTest
@testable import DenseKit

final class WeightsRoundTripTests: XCTestCase {
    func testFloat32RoundTripIsExactAndZeroCopy() throws {
        let values: [Float] = [0, -0.0, 1, -2.5, .pi, 0x1p-133, .greatestFiniteMagnitude, -.infinity, .infinity, .leastNonzeroMagnitude, 3e38, -7]
        var w = SafeTensorsWriter()
        try w.add("x", Tensor(shape: [3, 4], values: values))
        try w.add("img", Tensor(shape: [1, 2, 1, 3], values: [1, 2, 3, 4, 5, 6]))
        try w.add("nan", Tensor(shape: [1], values: [.nan]))
        let f = try SafeTensorsFile(data: w.serialized(), name: "rt")
        let x = try f.floatTensor("x")
        XCTAssertEqual(x.shape, [3, 4])
        XCTAssertEqual(x.layout, .plain)
        XCTAssertEqual(x.scalars.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertTrue(x.storage.readOnly, "aligned F32 should be borrowed, not copied")
        let img = try f.floatTensor("img", expectedShape: [1, 2, 1, 3])
        XCTAssertEqual(img.layout, .nchw)
        XCTAssertTrue(try f.floatTensor("nan").scalars[0].isNaN)
    }

    func testBorrowedTensorCopiesOnWriteAndOutlivesFile() throws {
        var w = SafeTensorsWriter()
        try w.add("a", Tensor(shape: [2, 2], values: [1, 2, 3, 4]))
        let dir = try WeightsTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.safetensors").path
        try w.write(to: path)
        var t: Tensor
        do {
            let f = try SafeTensorsFile(path: path)
            t = try f.floatTensor("a")
            XCTAssertTrue(t.storage.readOnly)
        }
        // The file object is gone; the mapping lives on through the tensor.
        XCTAssertEqual(t.scalars, [1, 2, 3, 4])
        t[0, 0] = 9
        XCTAssertFalse(t.storage.readOnly)
        XCTAssertEqual(t.scalars, [9, 2, 3, 4])
        XCTAssertEqual(try SafeTensorsFile(path: path).floatTensor("a").scalars, [1, 2, 3, 4])
    }

    func testFloat16AndBFloat16RoundTripOfRepresentableValues() throws {
        // Exactly representable in both formats.
        let values: [Float] = [0, -0.0, 1, -1, 0.5, 2, 3, -1.5, 256, 0.0078125, .infinity, -.infinity, 1.75, 96]
        var w = SafeTensorsWriter()
        try w.add("h", Tensor(shape: [2, 7], values: values), dtype: .f16)
        try w.add("b", Tensor(shape: [2, 7], values: values), dtype: .bf16)
        // Half-only and bfloat-only extremes.
        try w.add("h_ext", Tensor(shape: [4], values: [65504, -65504, 0x1p-24, 0x1p-14]), dtype: .f16)
        try w.add("b_ext", Tensor(shape: [3], values: [0x1p-133, Float(bitPattern: 0x7F7F_0000), 0x1p-126]), dtype: .bf16)
        try w.add("nan", Tensor(shape: [2], values: [.nan, -.nan]), dtype: .f16)
        let f = try SafeTensorsFile(data: w.serialized(), name: "half")
        XCTAssertEqual(f.info("h")?.dtype, .f16)
        XCTAssertEqual(f.info("b")?.dtype, .bf16)
        XCTAssertEqual(try f.floatTensor("h").scalars.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try f.floatTensor("b").scalars.map(\.bitPattern), values.map(\.bitPattern))
        XCTAssertEqual(try f.floatTensor("h_ext").scalars, [65504, -65504, 0x1p-24, 0x1p-14])
        XCTAssertEqual(try f.floatTensor("b_ext").scalars, [0x1p-133, Float(bitPattern: 0x7F7F_0000), 0x1p-126])
        let nans = try f.floatTensor("nan").scalars
        XCTAssertTrue(nans[0].isNaN && nans[1].isNaN)
        XCTAssertEqual(nans[1].sign, .minus)
    }

    func testHalfRoundingToNearestEven() {
        func h(_ x: Float) -> Float { HalfPrecision.floatFromHalfBits(HalfPrecision.halfBits(from: x)) }
        XCTAssertEqual(h(1 + 0x1p-11), 1)                    // tie, even is 1
        XCTAssertEqual(h(1 + 3 * 0x1p-11), 1 + 0x1p-9)       // tie, even is 1 + 2 ulp
        XCTAssertEqual(h(1 + 0x1p-11 + 0x1p-20), 1 + 0x1p-10) // above the tie
        XCTAssertEqual(h(65519), 65504)
        XCTAssertEqual(h(65520), .infinity)                  // tie between 65504 and 2^16: even is infinity
        XCTAssertEqual(h(-1e6), -.infinity)
        XCTAssertEqual(h(0x1p-25), 0)                        // tie, even is 0
        XCTAssertEqual(h(0x1p-25 * 1.0001), 0x1p-24)
        XCTAssertEqual(h(1.5 * 0x1p-24), 2 * 0x1p-24)        // tie between 1 and 2 subnormal ulps
        XCTAssertEqual(h(2.5 * 0x1p-24), 2 * 0x1p-24)
        XCTAssertEqual(h(0x1p-14 - 0x1p-26), 0x1p-14)        // rounds up into the smallest normal
        XCTAssertEqual(h(1e-30).sign, .plus)
        XCTAssertEqual(h(-1e-30).bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertTrue(h(.nan).isNaN)
    }

    func testBFloat16RoundingToNearestEven() {
        func b(_ x: Float) -> Float { HalfPrecision.floatFromBFloatBits(HalfPrecision.bfloatBits(from: x)) }
        XCTAssertEqual(b(1 + 0x1p-8), 1)
        XCTAssertEqual(b(1 + 3 * 0x1p-8), 1 + 0x1p-6)
        XCTAssertEqual(b(1 + 0x1p-8 + 0x1p-20), 1 + 0x1p-7)
        XCTAssertEqual(b(.greatestFiniteMagnitude), .infinity)
        XCTAssertEqual(b(0x1p-133), 0x1p-133)                 // smallest bfloat16 subnormal
        XCTAssertEqual(b(.leastNonzeroMagnitude), 0)          // 2^-149 is below half of it
        XCTAssertTrue(b(.nan).isNaN)
        XCTAssertTrue(b(Float(bitPattern: 0x7F80_0001)).isNaN, "a NaN with only low payload bits must not become infinity")
    }

    /// Every half and bfloat16 bit pattern converts to float and back to itself.
    func testExhaustiveSixteenBitPatterns() {
        for bits in 0...UInt16.max {
            let h = HalfPrecision.floatFromHalfBits(bits)
            let b = HalfPrecision.floatFromBFloatBits(bits)
            if h.isNaN {
                XCTAssertTrue(HalfPrecision.floatFromHalfBits(HalfPrecision.halfBits(from: h)).isNaN)
            } else if HalfPrecision.halfBits(from: h) != bits {
                XCTFail("half \(bits) -> \(h) -> \(HalfPrecision.halfBits(from: h))"); return
            }
            if b.isNaN {
                XCTAssertTrue(HalfPrecision.floatFromBFloatBits(HalfPrecision.bfloatBits(from: b)).isNaN)
            } else if HalfPrecision.bfloatBits(from: b) != bits {
                XCTFail("bf16 \(bits) -> \(b) -> \(HalfPrecision.bfloatBits(from: b))"); return
            }
        }
    }

    #if !(os(macOS) && arch(x86_64))
    /// Agrees with the standard library's Float16 (exact widening, IEEE rounding).
    func testAgreesWithFloat16() {
        for bits in 0...UInt16.max {
            let ours = HalfPrecision.floatFromHalfBits(bits)
            let std = Float(Float16(bitPattern: bits))
            if ours.isNaN { XCTAssertTrue(std.isNaN); continue }
            if ours.bitPattern != std.bitPattern { XCTFail("widen \(bits): \(ours) vs \(std)"); return }
        }
        var rng = WeightsTestRNG(seed: 42)
        for i in 0..<400_000 {
            // Mix of random bit patterns and values near half's range.
            let x: Float = i % 2 == 0 ? Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
                                      : Float(Double(Int64(bitPattern: rng.next()) % 2_000_000) * 0x1p-10 * (i % 4 == 1 ? 0x1p-20 : 1))
            if x.isNaN { continue }
            let ours = HalfPrecision.halfBits(from: x)
            let std = Float16(x).bitPattern
            if ours != std { XCTFail("narrow \(x) (\(x.bitPattern)): \(ours) vs \(std)"); return }
        }
    }
    #endif

    func testIndexTensorsAndZeroDimensional() throws {
        var w = SafeTensorsWriter()
        try w.add("idx", IndexTensor(shape: [2, 3], values: [0, -1, .max, .min, 42, 7]))
        try w.add("num_batches_tracked", IndexTensor(shape: [], values: [1234]))
        try w.add("scalar", Tensor(shape: [], values: [2.5]))
        try w.add("scalar_h", Tensor(shape: [], values: [-0.25]), dtype: .f16)
        try w.add("empty", Tensor(zeros: [0, 3]))
        try w.add("empty_i", IndexTensor(shape: [4, 0], values: []))
        let f = try SafeTensorsFile(data: w.serialized(), name: "idx")
        XCTAssertEqual(try f.indexTensor("idx"), IndexTensor(shape: [2, 3], values: [0, -1, .max, .min, 42, 7]))
        XCTAssertEqual(try f.indexTensor("num_batches_tracked"), IndexTensor(shape: [], values: [1234]))
        let s = try f.floatTensor("scalar")
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.count, 1)
        XCTAssertEqual(s.scalars, [2.5])
        XCTAssertEqual(try f.floatTensor("scalar_h", expectedShape: []).scalars, [-0.25])
        XCTAssertEqual(try f.floatTensor("empty").shape, [0, 3])
        XCTAssertEqual(try f.floatTensor("empty").count, 0)
        XCTAssertEqual(try f.indexTensor("empty_i"), IndexTensor(shape: [4, 0], values: []))
        XCTAssertEqual(f.info("idx")?.byteRange.count, 48)
    }

    func testMetadataAndNamesWithSpecialCharacters() throws {
        var w = SafeTensorsWriter()
        w.metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t ctl \u{1} é 🚀", "": "empty key"]
        try w.add("blocks.0/attn \"q\"\n", Tensor(shape: [1], values: [1]))
        try w.add("ünïcødé🚀", Tensor(shape: [1], values: [2]))
        let f = try SafeTensorsFile(data: w.serialized(), name: "meta")
        XCTAssertEqual(f.metadata, w.metadata)
        XCTAssertEqual(try f.floatTensor("blocks.0/attn \"q\"\n").scalars, [1])
        XCTAssertEqual(try f.floatTensor("ünïcødé🚀").scalars, [2])
        // Foundation agrees that the header is valid JSON.
        let data = try w.serialized()
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any]
        XCTAssertEqual((header?["__metadata__"] as? [String: String])?["format"], "pt")
    }

    func testWriterLayout() throws {
        var w = SafeTensorsWriter()
        w.metadata = ["k": "v"]
        try w.add("z_f32", Tensor(shape: [3], values: [1, 2, 3]))          // 12 bytes
        try w.add("a_f16", Tensor(shape: [3], values: [1, 2, 3]), dtype: .f16)   // 6 bytes
        try w.add("m_i64", IndexTensor(shape: [1], values: [5]))             // 8 bytes
        try w.add("b_f32", Tensor(shape: [1], values: [4]))                  // 4 bytes
        let data = try w.serialized()
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual((8 + n) % 8, 0)
        let header = String(decoding: data.subdata(in: 8..<(8 + n)), as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{\"k\":\"v\"},\"a_f16\":"), header)
        XCTAssertTrue(header.trimmingCharacters(in: .whitespaces).hasSuffix("}}"), header)
        XCTAssertTrue(header.reversed().drop { $0 == " " }.first == "}", "padding after the object is spaces only")
        let names = ["a_f16", "b_f32", "m_i64", "z_f32"].map { header.range(of: "\"\($0)\"")?.lowerBound }
        XCTAssertEqual(names.compactMap { $0 }, names.compactMap { $0 }.sorted(), "keys sorted")
        let f = try SafeTensorsFile(data: data, name: "layout")
        // Contiguous, largest element first, each tensor aligned to its element size.
        XCTAssertEqual(f.tensorNames, ["m_i64", "b_f32", "z_f32", "a_f16"])
        XCTAssertEqual(f.info("m_i64")?.byteRange, 0..<8)
        XCTAssertEqual(f.info("b_f32")?.byteRange, 8..<12)
        XCTAssertEqual(f.info("z_f32")?.byteRange, 12..<24)
        XCTAssertEqual(f.info("a_f16")?.byteRange, 24..<30)
        XCTAssertEqual(data.count, 8 + n + 30)
        XCTAssertTrue(try f.floatTensor("z_f32").storage.readOnly)
    }

    func testWriterRefusesBadInput() throws {
        var w = SafeTensorsWriter()
        try w.add("a", Tensor(shape: [1], values: [1]))
        XCTAssertThrowsError(try w.add("a", Tensor(shape: [1], values: [1])))
        XCTAssertThrowsError(try w.add("a", IndexTensor(shape: [1], values: [1])))
        XCTAssertThrowsError(try w.add("__metadata__", Tensor(shape: [1], values: [1])))
        XCTAssertThrowsError(try w.add("", Tensor(shape: [1], values: [1])))
        XCTAssertThrowsError(try w.add("c", Tensor(shape: [1], values: [1]), dtype: .i64)) { error in
            XCTAssertTrue(error is WeightsError)
            XCTAssertTrue("\(error)".contains("\"c\""), "\(error)")
        }
        XCTAssertEqual(try SafeTensorsFile(data: w.serialized(), name: "w").tensorNames, ["a"])
        // An empty writer makes a valid empty file.
        let empty = try SafeTensorsFile(data: SafeTensorsWriter().serialized(), name: "empty")
        XCTAssertEqual(empty.tensorNames, [])
        XCTAssertEqual(empty.metadata, [:])
    }

    func testAtomicWrite() throws {
        let dir = try WeightsTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        var w = SafeTensorsWriter()
        try w.add("a", Tensor(shape: [2], values: [1, 2]))
        try w.write(to: path)
        XCTAssertEqual(try SafeTensorsFile(path: path).floatTensor("a").scalars, [1, 2])

        // overwrite: false refuses an existing file and leaves it untouched.
        var w2 = SafeTensorsWriter()
        try w2.add("b", Tensor(shape: [1], values: [3]))
        XCTAssertThrowsError(try w2.write(to: path, overwrite: false)) { XCTAssertTrue($0 is WeightsError) }
        XCTAssertEqual(try SafeTensorsFile(path: path).tensorNames, ["a"])
        // overwrite: true replaces it.
        try w2.write(to: path)
        XCTAssertEqual(try SafeTensorsFile(path: path).tensorNames, ["b"])
        // overwrite: false to a new path works.
        let other = dir.appendingPathComponent("n.safetensors").path
        try w2.write(to: other, overwrite: false)
        XCTAssertEqual(try SafeTensorsFile(path: other).tensorNames, ["b"])

        // A folder that does not exist: error, nothing left behind.
        let missing = dir.appendingPathComponent("no/such/folder/x.safetensors").path
        XCTAssertThrowsError(try w2.write(to: missing)) { error in
            XCTAssertTrue("\(error)".contains("x.safetensors"), "\(error)")
        }
        // Renaming onto a directory fails: the temporary file is removed.
        let folderTarget = dir.appendingPathComponent("adir")
        try FileManager.default.createDirectory(at: folderTarget, withIntermediateDirectories: false)
        XCTAssertTrue(FileManager.default.createFile(atPath: folderTarget.appendingPathComponent("keep").path, contents: Data()))
        XCTAssertThrowsError(try w2.write(to: folderTarget.path))
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(left, ["adir", "m.safetensors", "n.safetensors"], "no temporary files left")
    }

    func testSummary() throws {
        var w = SafeTensorsWriter()
        w.metadata = ["arch": "test"]
        try w.add("a", Tensor(zeros: [2, 3]))
        try w.add("b", Tensor(zeros: [4]), dtype: .f16)
        try w.add("c", IndexTensor(shape: [], values: [1]))
        let f = try SafeTensorsFile(data: w.serialized(), name: "sum")
        let s = WeightsSummary(file: f)
        XCTAssertEqual(s.tensorCount, 3)
        XCTAssertEqual(s.parameterCount, 11)
        XCTAssertEqual(s.fileBytes, f.fileByteCount)
        XCTAssertEqual(s.dtypes.map(\.dtype), [.f32, .f16, .i64])
        XCTAssertTrue(s.text.contains("parameters: 11"), s.text)
        let json = try JSONSerialization.jsonObject(with: Data(s.jsonText.utf8)) as? [String: Any]
        XCTAssertEqual(json?["parameters"] as? Int, 11)
        XCTAssertEqual((json?["metadata"] as? [String: String])?["arch"], "test")
    }
}

/// A small deterministic generator for tests.
struct WeightsTestRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
