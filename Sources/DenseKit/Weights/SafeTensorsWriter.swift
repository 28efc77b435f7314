import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `write(2)`, named apart from `SafeTensorsWriter.write(to:overwrite:)`.
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}

/// Builds a safetensors file from tensors.
///
/// The header is JSON with keys sorted (`__metadata__` first), padded with spaces so
/// that the data section starts at a multiple of 8 bytes. Tensors are laid out
/// without gaps (as the reference `safetensors` library requires), largest element
/// size first and then by name, so every tensor starts at a multiple of its own
/// element size (8 for `I64`, 4 for `F32`) and `F32` tensors read back without a copy.
public struct SafeTensorsWriter {
    /// Free-form string metadata, stored as `__metadata__` (omitted when empty).
    public var metadata: [String: String]

    private struct Entry {
        var name: String
        var dtype: SafeTensorsDType
        var shape: [Int]
        var bytes: [UInt8]
    }
    private var entries: [String: Entry] = [:]

    /// An empty writer.
    public init() {
        metadata = [:]
    }

    /// Adds a float tensor.
    /// - Parameters:
    ///   - name: unique, non-empty, not `__metadata__`.
    ///   - tensor: any shape (0-d and empty tensors included).
    ///   - dtype: `.f32` (exact), `.f16` or `.bf16` (rounded to nearest even;
    ///     values beyond the format's range become infinity).
    /// - Throws: `WeightsError.invalidArgument` for a bad or repeated name or any other dtype.
    public mutating func add(_ name: String, _ tensor: Tensor, dtype: SafeTensorsDType = .f32) throws {
        try checkName(name)
        var bytes: [UInt8]
        switch dtype {
        case .f32:
            bytes = [UInt8](repeating: 0, count: tensor.count * 4)
            tensor.withUnsafeBufferPointer { src in
                #if _endian(little)
                bytes.withUnsafeMutableBytes { dst in
                    if let d = dst.baseAddress, let s = src.baseAddress { d.copyMemory(from: s, byteCount: dst.count) }
                }
                #else
                for (i, v) in src.enumerated() { Self.store(v.bitPattern, into: &bytes, at: 4 * i) }
                #endif
            }
        case .f16:
            bytes = [UInt8](repeating: 0, count: tensor.count * 2)
            tensor.withUnsafeBufferPointer { src in
                for (i, v) in src.enumerated() { Self.store(HalfPrecision.halfBits(from: v), into: &bytes, at: 2 * i) }
            }
        case .bf16:
            bytes = [UInt8](repeating: 0, count: tensor.count * 2)
            tensor.withUnsafeBufferPointer { src in
                for (i, v) in src.enumerated() { Self.store(HalfPrecision.bfloatBits(from: v), into: &bytes, at: 2 * i) }
            }
        default:
            throw WeightsError.invalidArgument(tensor: name, reason: "a float tensor can be stored as F32, F16 or BF16, not \(dtype.rawValue)")
        }
        entries[name] = Entry(name: name, dtype: dtype, shape: tensor.shape, bytes: bytes)
    }

    /// Adds an integer tensor, stored as `I64`.
    /// - Parameter name: unique, non-empty, not `__metadata__`.
    /// - Throws: `WeightsError.invalidArgument` for a bad or repeated name.
    public mutating func add(_ name: String, _ tensor: IndexTensor) throws {
        try checkName(name)
        var bytes = [UInt8](repeating: 0, count: tensor.values.count * 8)
        #if _endian(little)
        tensor.values.withUnsafeBytes { src in
            bytes.withUnsafeMutableBytes { dst in
                if let d = dst.baseAddress, let s = src.baseAddress { d.copyMemory(from: s, byteCount: dst.count) }
            }
        }
        #else
        for (i, v) in tensor.values.enumerated() { Self.store(UInt64(bitPattern: v), into: &bytes, at: 8 * i) }
        #endif
        entries[name] = Entry(name: name, dtype: .i64, shape: tensor.shape, bytes: bytes)
    }

    /// The whole file's bytes.
    /// - Throws: `WeightsError.invalidArgument` if a size does not fit (not expected in practice).
    public func serialized() throws -> Data {
        let ordered = entries.values.sorted {
            $0.dtype.byteSize != $1.dtype.byteSize ? $0.dtype.byteSize > $1.dtype.byteSize : $0.name < $1.name
        }
        var offsets: [String: (Int, Int)] = [:]
        var cursor = 0
        for e in ordered {
            let (end, overflow) = cursor.addingReportingOverflow(e.bytes.count)
            guard !overflow else { throw WeightsError.invalidArgument(tensor: e.name, reason: "data section too large") }
            offsets[e.name] = (cursor, end)
            cursor = end
        }
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(Self.jsonString($0)):\(Self.jsonString(metadata[$0] ?? ""))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        for name in entries.keys.sorted() {
            guard let e = entries[name], let (b, en) = offsets[name] else { continue }
            if !first { json += "," }
            first = false
            let shape = e.shape.map(String.init).joined(separator: ",")
            json += "\(Self.jsonString(name)):{\"data_offsets\":[\(b),\(en)],\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)]}"
        }
        json += "}"
        var header = Array(json.utf8)
        while header.count % 8 != 0 { header.append(0x20) }

        var data = Data(capacity: 8 + header.count + cursor)
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for e in ordered { data.append(contentsOf: e.bytes) }
        return data
    }

    /// Writes the file atomically: the bytes go to a temporary file in the same
    /// folder, which is flushed and then renamed over `path`. On failure no partial
    /// file is left at `path` (and the temporary file is removed).
    /// - Parameters:
    ///   - path: destination file.
    ///   - overwrite: when false, an existing file at `path` is an error (checked
    ///     atomically with a hard link).
    /// - Throws: `WeightsError.io` naming `path`.
    public func write(to path: String, overwrite: Bool = true) throws {
        let data = try serialized()
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temp = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func fail(_ what: String) -> WeightsError {
            WeightsError.io(file: path, reason: "\(what): \(String(cString: strerror(errno)))")
        }
        if !overwrite && FileManager.default.fileExists(atPath: path) {
            throw WeightsError.io(file: path, reason: "file exists and overwrite is false")
        }
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create temporary file in \(folder)") }
        var closed = false
        var finished = false
        defer {
            if !closed { close(fd) }
            if !finished { unlink(temp) }
        }
        let ok: Bool = data.withUnsafeBytes { raw in
            guard var p = raw.baseAddress else { return true }
            var left = raw.count
            while left > 0 {
                let n = posixWrite(fd, p, left)
                if n < 0 { if errno == EINTR { continue }; return false }
                if n == 0 { return false }
                p += n
                left -= n
            }
            return true
        }
        guard ok else { throw fail("cannot write temporary file") }
        guard fsync(fd) == 0 else { throw fail("cannot flush temporary file") }
        closed = true
        guard close(fd) == 0 else { throw fail("cannot close temporary file") }
        if overwrite {
            guard rename(temp, path) == 0 else { throw fail("cannot rename temporary file into place") }
        } else {
            guard link(temp, path) == 0 else {
                if errno == EEXIST { throw WeightsError.io(file: path, reason: "file exists and overwrite is false") }
                throw fail("cannot link temporary file into place")
            }
            unlink(temp)
        }
        finished = true
        // Best effort: make the rename itself durable.
        let dirfd = open(folder.isEmpty ? "." : folder, O_RDONLY | O_CLOEXEC)
        if dirfd >= 0 { _ = fsync(dirfd); close(dirfd) }
    }

    // MARK: helpers

    private func checkName(_ name: String) throws {
        guard !name.isEmpty else { throw WeightsError.invalidArgument(tensor: name, reason: "empty tensor name") }
        guard name != "__metadata__" else { throw WeightsError.invalidArgument(tensor: name, reason: "reserved name") }
        guard entries[name] == nil else { throw WeightsError.invalidArgument(tensor: name, reason: "tensor added twice") }
    }

    private static func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
        var v = value.littleEndian
        withUnsafeBytes(of: &v) { raw in
            for i in 0..<raw.count { bytes[offset + i] = raw[i] }
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
