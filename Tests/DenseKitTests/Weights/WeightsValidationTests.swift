import Foundation
import XCTest
@testable import DenseKit

/// Hand-built headers: every invalid one throws a one-line WeightsError, valid edge cases load.
final class WeightsValidationTests: XCTestCase {
    private func refuse(_ data: Data, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let f = try SafeTensorsFile(data: data, name: "case.safetensors")
            XCTFail("opened, tensors \(f.tensorNames); expected an error containing \"\(expected)\"", file: file, line: line)
        } catch let e as WeightsError {
            let text = e.description
            XCTAssertTrue(text.contains(expected), "\"\(text)\" lacks \"\(expected)\"", file: file, line: line)
            XCTAssertTrue(text.hasPrefix("case.safetensors"), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), text, file: file, line: line)
        } catch {
            XCTFail("not a WeightsError: \(error)", file: file, line: line)
        }
    }

    private func refuse(header: String, data: [UInt8] = [UInt8](repeating: 0, count: 64), _ expected: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        refuse(weightsTestFile(header: header, data: data), expected, file: file, line: line)
    }

    private let a4 = #""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#

    func testFileLevelProblems() {
        refuse(Data(), "empty file")
        refuse(Data([1, 0, 0]), "shorter than the 8-byte")
        refuse(Data([0, 0, 0, 0, 0, 0, 0]), "shorter than the 8-byte")
        refuse(Data([0, 0, 0, 0, 0, 0, 0, 0]), "too small")
        refuse(weightsTestFile(header: "{}", lengthOverride: 1 << 63), "9223372036854775808")
        refuse(weightsTestFile(header: "{}", lengthOverride: .max), "exceeds")
        refuse(weightsTestFile(header: "{}", lengthOverride: 3), "exceeds")
        let big = weightsTestFile(header: "{}", headerPadding: 2000)
        XCTAssertThrowsError(try SafeTensorsFile(data: big, name: "x", maxHeaderBytes: 1000)) {
            XCTAssertTrue("\($0)".contains("limit of 1000"), "\($0)")
        }
        XCTAssertNoThrow(try SafeTensorsFile(data: big, name: "x"))
    }

    func testHeaderSyntax() {
        refuse(header: "", "too small")
        refuse(header: "[]", "not a JSON object")
        refuse(header: "\"a\"", "not a JSON object")
        refuse(header: "{", "too small")
        refuse(header: "{ ", "ends early")
        refuse(header: "{}x", "after the header object")
        refuse(header: "{} {}", "after the header object")
        refuse(header: "{\(a4),}", "expected a string")
        refuse(header: "{\(a4)", "ends early")
        refuse(header: "{\"a\" {}}", "expected ':'")
        refuse(header: "{\"a\u{1}\":{}}", "control character")
        refuse(header: "{\"\\x\":{}}", "invalid escape")
        refuse(header: "{\"\\ud800\":{}}", "lone surrogate")
        refuse(header: "{\"\\udc00\":{}}", "lone surrogate")
        refuse(header: "{\"\\u12\":{}}", "\\u escape")
        refuse(header: "{\"\":{}}", "no dtype")
        // Invalid UTF-8 bytes inside a string.
        let bad: [UInt8] = Array("{\"a".utf8) + [0xC3, 0x28] + Array("\":{}}  ".utf8)
        var raw = Data(weightsLEBytes([UInt64(bad.count)]))
        raw.append(contentsOf: bad)
        refuse(raw, "not valid UTF-8")
        // Deep nesting in an unused key: refused by depth, no stack overflow.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":\(deep)}}", "deeper than")
        let deepObj = String(repeating: "{\"k\":", count: 5000) + "1" + String(repeating: "}", count: 5000)
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":\(deepObj)}}", "deeper than")
    }

    func testDuplicateKeys() {
        refuse(header: "{\(a4),\(a4)}", "duplicate tensor name")
        // Same key after unescaping.
        refuse(header: "{\(a4),\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "duplicate tensor name")
        refuse(header: "{\"__metadata__\":{},\"__metadata__\":{},\(a4)}", "duplicate key \"__metadata__\"")
        refuse(header: "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},\(a4)}", "duplicate key \"k\" in __metadata__")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "duplicate key \"dtype\"")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":{\"y\":1,\"y\":2}}}", "duplicate key \"y\"")
    }

    func testEntryProblems() {
        refuse(header: "{\"a\":[]}", "not a JSON object")
        refuse(header: "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "no dtype")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "no shape")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "no data_offsets")
        refuse(header: "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype \"f32\"")
        refuse(header: "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype is not a string")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "shape is not an array")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", "not an integer")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", "not an integer")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", "not an integer")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "leading zero")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", "too large")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[-9223372036854775808],\"data_offsets\":[0,4]}}", "negative dimension")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[\(Array(repeating: "1", count: 65).joined(separator: ","))],\"data_offsets\":[0,4]}}", "more than 64")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", "more than 2")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", "expected [begin, end]")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "negative data_offsets")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "end before")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[64,68]}}", "outside the data section of 64 bytes")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8 bytes")
        refuse(header: "{\"a\":{\"dtype\":\"I64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", "byte count")
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}", "overlap")
        // A tensor inside another one.
        refuse(header: "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", "overlap")
        refuse(header: "{\"__metadata__\":{\"k\":1}}", "not a string")
        refuse(header: "{\"__metadata__\":[],\(a4)}", "object of strings")
        // Tensor count cap.
        let many = (0..<5).map { "\"t\($0)\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[\($0),\($0 + 1)]}" }.joined(separator: ",")
        XCTAssertThrowsError(try SafeTensorsFile(data: weightsTestFile(header: "{\(many)}", data: [1, 2, 3, 4, 5]), name: "m", maxTensors: 4)) {
            XCTAssertTrue("\($0)".contains("more than 4 tensors"), "\($0)")
        }
        XCTAssertEqual(try SafeTensorsFile(data: weightsTestFile(header: "{\(many)}", data: [1, 2, 3, 4, 5]), name: "m", maxTensors: 5).tensorNames,
                       ["t0", "t1", "t2", "t3", "t4"])
    }

    func testValidEdgeCases() throws {
        // Whitespace, unknown keys, null metadata, gaps, zero-size tensors sharing an offset,
        // a 0-d tensor, I32 widening, other dtypes listed but not readable as floats.
        let header = """
         { "__metadata__" : null ,
           "s": {"shape": [], "dtype": "F32", "data_offsets": [8, 12], "extra": {"nested": [1, 2.5e3, true, null, "x"]}},
           "z1": {"dtype": "F32", "shape": [0, 5], "data_offsets": [12, 12]},
           "z0": {"dtype": "F16", "shape": [3, 0], "data_offsets": [12, 12]},
           "i": {"dtype": "I32", "shape": [2], "data_offsets": [16, 24]},
           "u": {"dtype": "U8", "shape": [2], "data_offsets": [24, 26]},
           "h": {"dtype": "F16", "shape": [2], "data_offsets": [26, 30]},
           "b": {"dtype": "BF16", "shape": [2], "data_offsets": [30, 34]},
           "d": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}
         }\t\r\n
        """
        var data = [UInt8](repeating: 0xEE, count: 40)
        data.replaceSubrange(0..<8, with: weightsLEBytes([(1.5 as Double).bitPattern]))
        data.replaceSubrange(8..<12, with: weightsFloatBytes([-3.25]))
        data.replaceSubrange(16..<24, with: weightsLEBytes([Int32(-5), Int32.max]))
        data.replaceSubrange(24..<26, with: [7, 8])
        data.replaceSubrange(26..<30, with: weightsLEBytes([UInt16(0x3C00), UInt16(0x0001)]))  // 1, 2^-24
        data.replaceSubrange(30..<34, with: weightsLEBytes([UInt16(0xC040), UInt16(0x7F80)]))  // -3, inf
        let f = try SafeTensorsFile(data: weightsTestFile(header: header, data: data), name: "edge")
        XCTAssertEqual(f.metadata, [:])
        XCTAssertEqual(f.tensorNames, ["d", "s", "z0", "z1", "i", "u", "h", "b"])
        XCTAssertEqual(try f.floatTensor("s").scalars, [-3.25])
        XCTAssertEqual(try f.floatTensor("s").shape, [])
        XCTAssertEqual(try f.floatTensor("z1").shape, [0, 5])
        XCTAssertEqual(try f.floatTensor("z0").shape, [3, 0])
        XCTAssertEqual(try f.indexTensor("i"), IndexTensor(shape: [2], values: [-5, Int64(Int32.max)]))
        XCTAssertEqual(try f.floatTensor("h").scalars, [1, 0x1p-24])
        XCTAssertEqual(try f.floatTensor("b").scalars, [-3, .infinity])
        for name in ["u", "d", "i"] {
            XCTAssertThrowsError(try f.floatTensor(name)) { error in
                guard case WeightsError.unsupportedDType = error else { return XCTFail("\(error)") }
            }
        }
        XCTAssertThrowsError(try f.indexTensor("u"))
        XCTAssertThrowsError(try f.indexTensor("missing")) { XCTAssertTrue("\($0)".contains("no tensor named \"missing\"")) }
        XCTAssertEqual(f.info("i")?.elementCount, 2)
        XCTAssertEqual(f.info("s")?.elementCount, 1)
    }

    /// F32 data that is not 4-byte aligned in memory is copied, with the right values.
    func testUnalignedFloat32IsCopied() throws {
        // Header of 1 byte more than a multiple of 8, so the data section starts at an odd address
        // (both the in-memory copy and the mapped file are page/64-byte aligned).
        let header = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[3],"data_offsets":[18,30]}}"#
        var padding = 0
        while (8 + header.utf8.count + padding) % 8 != 1 { padding += 1 }
        var data = weightsFloatBytes([1, -2, 3.5, 1e30]) + [0xAB, 0xCD] + weightsFloatBytes([.pi, -.infinity, 0x1p-140])
        data += [0x00]
        let bytes = weightsTestFile(header: header, data: data, headerPadding: padding)
        let inMemory = try SafeTensorsFile(data: bytes, name: "unaligned")
        let dir = try WeightsTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("unaligned.safetensors")
        try bytes.write(to: url)
        let mapped = try SafeTensorsFile(path: url.path)
        for f in [inMemory, mapped] {
            let a = try f.floatTensor("a", expectedShape: [2, 2])
            XCTAssertFalse(a.storage.readOnly, "unaligned data must be copied")
            XCTAssertEqual(a.scalars, [1, -2, 3.5, 1e30])
            let b = try f.floatTensor("b")
            XCTAssertFalse(b.storage.readOnly)
            XCTAssertEqual(b.scalars.map(\.bitPattern), [Float.pi, -.infinity, 0x1p-140].map(\.bitPattern))
        }
        // The same tensors at an aligned address are borrowed.
        let aligned = weightsTestFile(header: header, data: data, headerPadding: padding - 1)
        XCTAssertTrue(try SafeTensorsFile(data: aligned, name: "aligned").floatTensor("a").storage.readOnly)
    }

    /// Truncations and single-byte changes of the valid control never crash: each loads or throws.
    func testMutationsNeverCrash() throws {
        var w = SafeTensorsWriter()
        w.metadata = ["note": "fuzz"]
        try w.add("a", Tensor(shape: [2, 2], values: [1, 2, 3, 4]))
        try w.add("h", Tensor(shape: [3], values: [1, 2, 3]), dtype: .f16)
        try w.add("b", IndexTensor(shape: [1], values: [7]))
        let base = [UInt8](try w.serialized())
        func exercise(_ bytes: [UInt8]) {
            guard let f = try? SafeTensorsFile(data: Data(bytes), name: "fuzz") else { return }
            for name in f.tensorNames {
                _ = try? f.floatTensor(name)
                _ = try? f.indexTensor(name)
            }
        }
        for n in 0..<base.count { exercise(Array(base[0..<n])) }
        let replacements: [UInt8] = [0x00, 0x01, 0x20, 0x22, 0x2C, 0x2D, 0x30, 0x39, 0x5B, 0x5D, 0x5C, 0x7B, 0x7D, 0x7F, 0x80, 0xFF]
        for i in 0..<base.count {
            for r in replacements where base[i] != r {
                var m = base
                m[i] = r
                exercise(m)
            }
        }
        var rng = WeightsTestRNG(seed: 7)
        for _ in 0..<3000 {
            var m = base
            for _ in 0..<Int(rng.next() % 4 + 1) {
                let i = Int(rng.next() % UInt64(m.count))
                m[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            exercise(m)
        }
    }
}
