import Foundation

/// A safetensors file opened for reading, fully validated when it is opened.
///
/// Layout: an 8-byte little-endian header length `N`, `N` bytes of UTF-8 JSON (an
/// object of tensor entries `{"dtype", "shape", "data_offsets": [begin, end]}` and
/// an optional `__metadata__` object of strings), then the data section; offsets
/// are relative to the start of the data section.
///
/// Opening checks everything before any tensor is read: the header length against
/// the file size and `maxHeaderBytes` (never allocating from the untrusted length),
/// UTF-8 and JSON syntax, duplicate keys, known dtypes, integer non-negative
/// dimensions (rank at most 64, element count without overflow), `begin <= end`
/// inside the data section, byte count equal to element count times dtype size, no
/// two tensors overlapping, at most `maxTensors` tensors. Gaps between tensors are
/// allowed. Every problem is a `WeightsError`.
///
/// Tensors read from a file that was opened with `init(path:)` may borrow the mapped
/// memory (zero copy); the mapping lives as long as any such tensor or the file
/// object. Instances are immutable and safe to share across threads.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path the file was opened from, or the name given to `init(data:name:)`.
    public let path: String
    /// The `__metadata__` object (string values only); empty when absent.
    public let metadata: [String: String]
    /// Tensor names in data-offset order (ties broken by end offset, then name).
    public let tensorNames: [String]

    private let region: WeightsByteRegion
    /// Offset of the data section in `region` (8 + header length).
    private let dataStart: Int
    private let infos: [String: SafeTensorInfo]

    /// Memory-maps (read-only, private) and validates the file at `path`.
    /// - Parameters:
    ///   - path: a regular file.
    ///   - maxHeaderBytes: the largest header accepted, in bytes (default 100 MiB).
    ///   - maxTensors: the most tensor entries accepted.
    /// - Throws: `WeightsError.io` when the file cannot be opened or mapped;
    ///   `.malformed` or `.invalidTensor` when the content is invalid.
    public init(path: String, maxHeaderBytes: Int = 100 << 20, maxTensors: Int = 1_000_000) throws {
        let region = try WeightsByteRegion(mappingFileAt: path)
        let parsed = try Self.validate(region: region, file: path, maxHeaderBytes: maxHeaderBytes, maxTensors: maxTensors)
        self.path = path
        self.region = region
        self.dataStart = parsed.dataStart
        self.metadata = parsed.metadata
        self.tensorNames = parsed.names
        self.infos = parsed.infos
    }

    /// Validates the bytes of a safetensors file held in memory (they are copied once
    /// into aligned memory).
    /// - Parameters:
    ///   - data: the whole file.
    ///   - name: used in error messages and as `path`.
    ///   - maxHeaderBytes: the largest header accepted, in bytes.
    ///   - maxTensors: the most tensor entries accepted.
    /// - Throws: `WeightsError.malformed` or `.invalidTensor`.
    public init(data: Data, name: String, maxHeaderBytes: Int = 100 << 20, maxTensors: Int = 1_000_000) throws {
        let region = WeightsByteRegion(copying: data)
        let parsed = try Self.validate(region: region, file: name, maxHeaderBytes: maxHeaderBytes, maxTensors: maxTensors)
        self.path = name
        self.region = region
        self.dataStart = parsed.dataStart
        self.metadata = parsed.metadata
        self.tensorNames = parsed.names
        self.infos = parsed.infos
    }

    /// Size of the whole file, in bytes.
    public var fileByteCount: Int { region.count }

    /// Size of the JSON header, in bytes (without the 8-byte length field).
    public var headerByteCount: Int { dataStart - 8 }

    /// The validated entry of tensor `name`, or nil when there is none.
    public func info(_ name: String) -> SafeTensorInfo? { infos[name] }

    /// Whether the file holds a tensor named `name`.
    public func contains(_ name: String) -> Bool { infos[name] != nil }

    /// Reads tensor `name` as float32 with the shape stored in the file.
    ///
    /// `F32` data aligned to 4 bytes in memory is returned without copying (read-only
    /// storage borrowed from the file; mutating the tensor copies it first);
    /// unaligned `F32` is copied. `F16` and `BF16` are converted exactly.
    /// Rank-4 tensors get layout `.nchw`, others `.plain`.
    /// - Throws: `WeightsError.missingTensor`; `.unsupportedDType` for other dtypes.
    public func floatTensor(_ name: String) throws -> Tensor {
        guard let info = infos[name] else { throw WeightsError.missingTensor(file: path, tensor: name) }
        let shape = info.shape
        let layout: TensorLayout = shape.count == 4 ? .nchw : .plain
        let count = info.elementCount
        let range = (dataStart + info.byteRange.lowerBound)..<(dataStart + info.byteRange.upperBound)
        switch info.dtype {
        case .f32:
            #if _endian(little)
            if count > 0 {
                let borrowed: Tensor?? = region.withBytes(range) { raw -> Tensor? in
                    guard let base = raw.baseAddress, raw.count == count * MemoryLayout<Float>.size,
                          Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
                    let p = base.assumingMemoryBound(to: Float.self)
                    return Tensor(shape: shape, layout: layout,
                                  storage: TensorStorage(borrowing: p, count: count, owner: region))
                }
                if case let .some(.some(t)) = borrowed { return t }
            }
            #endif
            return try converted(info, range: range, layout: layout) { raw, out in
                #if _endian(little)
                if let src = raw.baseAddress, let dst = out.baseAddress {
                    UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: raw.count)
                }
                #else
                for i in 0..<out.count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                #endif
            }
        case .f16:
            return try converted(info, range: range, layout: layout) { raw, out in
                for i in 0..<out.count { out[i] = HalfPrecision.floatFromHalfBits(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            }
        case .bf16:
            return try converted(info, range: range, layout: layout) { raw, out in
                for i in 0..<out.count { out[i] = HalfPrecision.floatFromBFloatBits(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            }
        default:
            throw WeightsError.unsupportedDType(file: path, tensor: name, dtype: info.dtype, wanted: "float32 (F32, F16 or BF16)")
        }
    }

    /// Reads tensor `name` as float32 and checks its shape.
    /// - Parameter expectedShape: the dimensions the caller needs, outermost first.
    /// - Throws: `WeightsError.shapeMismatch` (file, tensor, expected and found
    ///   shapes) before reading any data, and the errors of `floatTensor(_:)`.
    public func floatTensor(_ name: String, expectedShape: [Int]) throws -> Tensor {
        guard let info = infos[name] else { throw WeightsError.missingTensor(file: path, tensor: name) }
        guard info.shape == expectedShape else {
            throw WeightsError.shapeMismatch(file: path, tensor: name, expected: expectedShape, found: info.shape)
        }
        return try floatTensor(name)
    }

    /// Reads tensor `name` as 64-bit integers (`I64`, or `I32` widened).
    /// - Throws: `WeightsError.missingTensor`; `.unsupportedDType` for other dtypes.
    public func indexTensor(_ name: String) throws -> IndexTensor {
        guard let info = infos[name] else { throw WeightsError.missingTensor(file: path, tensor: name) }
        let count = info.elementCount
        let range = (dataStart + info.byteRange.lowerBound)..<(dataStart + info.byteRange.upperBound)
        let values: [Int64]??
        switch info.dtype {
        case .i64:
            values = region.withBytes(range) { raw in
                guard raw.count == 8 * count else { return nil }
                return (0..<count).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
            }
        case .i32:
            values = region.withBytes(range) { raw in
                guard raw.count == 4 * count else { return nil }
                return (0..<count).map { Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            }
        default:
            throw WeightsError.unsupportedDType(file: path, tensor: name, dtype: info.dtype, wanted: "integers (I64 or I32)")
        }
        guard let checked = values, let values = checked, values.count == count else {
            throw WeightsError.invalidTensor(file: path, tensor: name, reason: "data outside the file")
        }
        return IndexTensor(shape: info.shape, values: values)
    }

    // MARK: internals

    private func converted(_ info: SafeTensorInfo, range: Range<Int>, layout: TensorLayout,
                           _ body: (UnsafeRawBufferPointer, UnsafeMutableBufferPointer<Float>) -> Void) throws -> Tensor {
        var tensor = Tensor(zeros: info.shape, layout: layout)
        let ok: Bool? = region.withBytes(range) { raw in
            guard raw.count == tensor.count * info.dtype.byteSize else { return false }
            tensor.withUnsafeMutableBufferPointer { out in body(raw, out) }
            return true
        }
        guard ok == true else {
            throw WeightsError.invalidTensor(file: path, tensor: info.name, reason: "data outside the file")
        }
        return tensor
    }

    private struct Validated {
        var dataStart: Int
        var metadata: [String: String]
        var names: [String]
        var infos: [String: SafeTensorInfo]
    }

    private static func validate(region: WeightsByteRegion, file: String, maxHeaderBytes: Int, maxTensors: Int) throws -> Validated {
        let size = region.count
        guard size > 0 else { throw WeightsError.malformed(file: file, reason: "empty file (0 bytes)") }
        guard size >= 8, let lengthBytes = region.copyBytes(0..<8) else {
            throw WeightsError.malformed(file: file, reason: "file is \(size) bytes, shorter than the 8-byte header length")
        }
        var rawLength: UInt64 = 0
        for (i, b) in lengthBytes.enumerated() { rawLength |= UInt64(b) << UInt64(8 * i) }
        let available = UInt64(size - 8)
        guard rawLength <= available else {
            throw WeightsError.malformed(file: file, reason: "header length \(rawLength) exceeds the \(available) bytes after the length field")
        }
        guard rawLength <= UInt64(max(maxHeaderBytes, 0)) else {
            throw WeightsError.malformed(file: file, reason: "header length \(rawLength) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        // Both checks passed, so the value fits in Int and within the file.
        let headerLength = Int(truncatingIfNeeded: rawLength)
        guard headerLength >= 2, let headerBytes = region.copyBytes(8..<(8 + headerLength)) else {
            throw WeightsError.malformed(file: file, reason: "header length \(headerLength) is too small for a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataCount = size - dataStart

        var parser = SafeTensorsHeaderParser(bytes: headerBytes, maxTensors: max(maxTensors, 0))
        let parsed: (metadata: [String: String], entries: [RawTensorEntry])
        do {
            parsed = try parser.parse()
        } catch let f as SafeTensorsHeaderParser.Failure {
            if let t = f.tensor { throw WeightsError.invalidTensor(file: file, tensor: t, reason: f.reason) }
            throw WeightsError.malformed(file: file, reason: f.reason)
        }

        var infos: [String: SafeTensorInfo] = [:]
        infos.reserveCapacity(parsed.entries.count)
        var ordered: [SafeTensorInfo] = []
        ordered.reserveCapacity(parsed.entries.count)
        for e in parsed.entries {
            func bad(_ reason: String) -> WeightsError { .invalidTensor(file: file, tensor: e.name, reason: reason) }
            var elements = 1
            for d in e.shape {
                guard d >= 0 else { throw bad("negative dimension \(d) in shape \(e.shape)") }
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("element count of shape \(e.shape) overflows 64 bits") }
                elements = p
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: e.dtype.byteSize)
            guard !overflow else { throw bad("byte count of \(e.dtype.rawValue) shape \(e.shape) overflows 64 bits") }
            guard e.begin >= 0, e.end >= 0 else { throw bad("negative data_offsets [\(e.begin), \(e.end)]") }
            guard e.begin <= e.end else { throw bad("data_offsets [\(e.begin), \(e.end)] end before they begin") }
            guard e.end <= dataCount else {
                throw bad("data_offsets [\(e.begin), \(e.end)] outside the data section of \(dataCount) bytes")
            }
            guard e.end - e.begin == bytes else {
                throw bad("\(e.dtype.rawValue) shape \(e.shape) needs \(bytes) bytes, data_offsets [\(e.begin), \(e.end)] span \(e.end - e.begin)")
            }
            let info = SafeTensorInfo(name: e.name, dtype: e.dtype, shape: e.shape, byteRange: e.begin..<e.end)
            infos[e.name] = info
            ordered.append(info)
        }
        ordered.sort {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound)
                || (($0.byteRange.lowerBound, $0.byteRange.upperBound) == ($1.byteRange.lowerBound, $1.byteRange.upperBound) && $0.name < $1.name)
        }
        var previous: SafeTensorInfo?
        for info in ordered where !info.byteRange.isEmpty {
            if let p = previous, p.byteRange.upperBound > info.byteRange.lowerBound {
                throw WeightsError.invalidTensor(file: file, tensor: info.name,
                    reason: "data_offsets [\(info.byteRange.lowerBound), \(info.byteRange.upperBound)] overlap tensor \"\(WeightsError.clean(p.name))\" [\(p.byteRange.lowerBound), \(p.byteRange.upperBound)]")
            }
            previous = info
        }
        return Validated(dataStart: dataStart, metadata: parsed.metadata, names: ordered.map(\.name), infos: infos)
    }
}
